"""Seeds (localization cues) and masks from class activation maps.

- :func:`seeds_from_maps`: SEC's cues (Kolesnikov & Lampert, ECCV 2016, Sec. 3.2): foreground strictly
  above 20 % of each present class map's maximum; background from the lowest 10 % of a saliency map, or,
  without saliency, where every class map is below a threshold; overlaps resolved by "the smaller cue wins"
  (SEC) or by the argmax; 255 where nothing is sure.
- :func:`cam_to_mask`: the CAM-to-mask protocol of IRN (Ahn et al., CVPR 2019): a constant background plane
  before the argmax.
- :func:`irn_confident_seeds`: IRN's confident seeds, two background planes each refined by a label CRF.
- :func:`gradient_saliency`: SEC's background saliency (gradient of the summed class scores at a layer).

All maps are ``(K, H, W)`` arrays for the K classes present in the image, with ``classes`` ``(K,)`` their
labels in ``[1, n)``; label maps are uint8 ``(H, W)`` with 0 for background and 255 for unlabelled.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from wsl.segmentation.crf import label_crf

__all__ = [
    "cam_to_mask",
    "gradient_saliency",
    "irn_confident_seeds",
    "max_normalise",
    "seeds_from_maps",
]

IGNORE = 255


def _check_maps(maps: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if maps.ndim != 3 or maps.shape[0] != classes.size:
        raise ValueError(f"maps must be (K, H, W) with K = len(classes); got {maps.shape}, {classes.size}")
    if classes.size and ((classes < 1) | (classes >= IGNORE)).any():
        raise ValueError(f"classes must be foreground labels in [1, 255), got {classes}")
    if not np.issubdtype(maps.dtype, np.floating) or not np.isfinite(maps).all():
        raise ValueError("maps must be finite floats")
    return maps, classes


def max_normalise(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its maximum after clamping negatives to 0; an all-zero map stays zero.

    Args:
        maps: ``(K, H, W)`` float.

    Returns:
        ``(K, H, W)`` in ``[0, 1]``, same dtype; the input is not modified.
    """
    maps = np.maximum(np.asarray(maps), 0)
    peak = maps.max(axis=(1, 2), keepdims=True, initial=0)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def seeds_from_maps(
    maps: np.ndarray,
    classes: np.ndarray,
    fg_thresh: float = 0.2,
    bg_thresh: float = 0.05,
    saliency: np.ndarray | None = None,
    bg_fraction: float = 0.1,
    overlap: Literal["smaller", "argmax"] = "smaller",
) -> np.ndarray:
    """Seeds from the class maps of the classes present in an image (SEC's cues).

    Foreground cue of class k: ``maps[k] > fg_thresh * max(maps[k])`` (strictly above). Background cue:
    with ``saliency`` ``(H, W)``, the ``bg_fraction`` least salient pixels (every pixel whose saliency is at
    most the ``ceil(bg_fraction * H * W)``-th smallest value, so ties are all included; SEC, 10 %);
    without it, pixels where every max-normalised class map is strictly below ``bg_thresh`` (all pixels
    when K = 0).

    Overlaps: ``"smaller"`` (SEC): the cue with fewer pixels wins, background counting as a cue; cues of
    equal size are painted background first, then classes in the given order, so the later one wins.
    ``"argmax"``: among foreground cues the class with the largest normalised map wins (the first one on
    ties); where the background cue meets a foreground cue the pixel is unsure (255).

    Args:
        maps: ``(K, H, W)`` float class maps (raw or max-normalised: only ratios to the max matter).
        classes: ``(K,)`` labels in ``[1, 255)``.

    Returns:
        uint8 ``(H, W)``: 0 background, ``classes[k]`` foreground, 255 no cue.
    """
    maps, classes = _check_maps(maps, classes)
    if overlap not in ("smaller", "argmax"):
        raise ValueError(f"overlap must be 'smaller' or 'argmax', got {overlap!r}")
    norm = max_normalise(maps)
    fg = norm > fg_thresh  # (K, H, W)
    if saliency is not None:
        saliency = np.asarray(saliency, dtype=np.float64)
        if saliency.shape != maps.shape[1:]:
            raise ValueError(f"saliency shape {saliency.shape} != map shape {maps.shape[1:]}")
        if not 0 < bg_fraction <= 1:
            raise ValueError("bg_fraction must lie in (0, 1]")
        k = int(np.ceil(bg_fraction * saliency.size))
        cut = np.partition(saliency.reshape(-1), k - 1)[k - 1]
        bg = saliency <= cut
    else:
        bg = (norm < bg_thresh).all(axis=0)
    seeds = np.full(maps.shape[1:], IGNORE, dtype=np.uint8)
    if overlap == "smaller":
        cues = [(0, bg)] + [(int(c), fg[k]) for k, c in enumerate(classes)]
        order = sorted(range(len(cues)), key=lambda i: -int(cues[i][1].sum()))  # stable: larger first
        for i in order:
            label, cue = cues[i]
            seeds[cue] = label
        return seeds
    any_fg = fg.any(axis=0)
    if classes.size:
        winner = np.where(fg, norm, -np.inf).argmax(axis=0)
        seeds[any_fg] = classes[winner[any_fg]]
    seeds[bg & ~any_fg] = 0
    seeds[bg & any_fg] = IGNORE
    return seeds


def cam_to_mask(maps: np.ndarray, classes: np.ndarray, threshold: float = 0.15) -> np.ndarray:
    """IRN's CAM-to-mask protocol: ``argmax([t, m_1, ..., m_K])`` mapped to labels.

    The background plane is built in the maps' dtype; ``np.argmax`` takes the first maximum, so background
    wins ties (matches :class:`wsl.metrics.segmentation.ThresholdSweep` exactly).

    Args:
        maps: ``(K, H, W)`` float max-normalised maps of the present classes (K may be 0).
        classes: ``(K,)`` labels in ``[1, 255)``.
        threshold: the background plane (IRN: 0.15).

    Returns:
        uint8 ``(H, W)`` label map with values in ``{0} | set(classes)``.
    """
    maps, classes = _check_maps(maps, classes)
    plane = np.full((1, *maps.shape[1:]), threshold, dtype=maps.dtype)
    index = np.concatenate([plane, maps]).argmax(axis=0)
    keys = np.concatenate([[0], classes]).astype(np.uint8)
    return keys[index]


def irn_confident_seeds(
    image: np.ndarray,
    maps: np.ndarray,
    classes: np.ndarray,
    fg_threshold: float = 0.30,
    bg_threshold: float = 0.05,
    gt_prob: float = 0.7,
    iterations: int = 10,
) -> np.ndarray:
    """IRN's confident seeds (Ahn et al., CVPR 2019, Sec. 3.1 and its ``cam_to_ir_label`` step).

    Masks with a background plane at ``fg_threshold`` (confident foreground) and at ``bg_threshold``
    (confident background) are each refined by :func:`~wsl.segmentation.crf.label_crf` on the image. A pixel
    keeps the class of the first where that is foreground; it is background where both say background; the
    rest (first says background, second foreground) is unsure, 255.

    Args:
        image: uint8 ``(H, W, 3)`` original picture.
        maps: ``(K, H, W)`` float max-normalised maps at image resolution.
        classes: ``(K,)`` labels in ``[1, 255)``.

    Returns:
        uint8 ``(H, W)`` seeds: 0, ``classes`` or 255.
    """
    maps, classes = _check_maps(maps, classes)
    keys = np.concatenate([[0], classes]).astype(np.uint8)
    refined = []
    for t in (fg_threshold, bg_threshold):
        plane = np.full((1, *maps.shape[1:]), t, dtype=maps.dtype)
        index = np.concatenate([plane, maps]).argmax(axis=0)
        refined.append(keys[label_crf(image, index, keys.size, gt_prob=gt_prob, iterations=iterations)])
    fg_conf, bg_conf = refined
    seeds = fg_conf.copy()
    seeds[fg_conf == 0] = IGNORE
    seeds[(fg_conf == 0) & (bg_conf == 0)] = 0
    return seeds


def gradient_saliency(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """SEC's background saliency: gradient of the summed class scores at ``layer``.

    ``max_channels |d sum_c score_c / d A|`` (SEC used conv4_1 of VGG-16, after Simonyan et al. 2014),
    then a 3x3 median filter (replicate padding). The gradient is taken at the layer's own output (before
    an in-place ReLU that follows, like Caffe's in-place layers). The model must return class scores
    ``(B, C)`` (spatial outputs are summed over positions too). Gradients of the parameters are left alone.

    Args:
        model: the classifier, in the mode the caller chose (usually eval).
        layer: a module of ``model`` whose output ``A`` is ``(B, D, h, w)``.
        images: ``(B, 3, H, W)`` normalised input batch.

    Returns:
        ``(B, h, w)`` saliency at the layer's resolution (detached, on the images' device).
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, out: torch.Tensor) -> torch.Tensor:
        captured.append(out)
        return out.clone()  # an in-place ReLU after the layer must not overwrite the captured output

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = model(images.detach().requires_grad_(True))  # a graph even if the model is frozen
            if len(captured) != 1:
                raise RuntimeError(f"layer ran {len(captured)} times in one forward; expected once")
            (grad,) = torch.autograd.grad(scores.sum(), captured[0])
    finally:
        handle.remove()
    sal = grad.abs().amax(dim=1, keepdim=True)  # (B, 1, h, w)
    padded = nn.functional.pad(sal, (1, 1, 1, 1), mode="replicate")
    patches = nn.functional.unfold(padded, kernel_size=3)  # (B, 9, h*w)
    return patches.median(dim=1).values.reshape(sal.shape[0], *sal.shape[2:]).detach()
