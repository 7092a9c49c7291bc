"""Test-time inference of a segmentation network: multi-scale + flip, averaged softmax, optional dense CRF.

DeepLab (Chen et al., TPAMI 2018) and the WSSS papers after it (PSA, IRN: shared/reference/wsss-loop.md)
score the final network on val with several input scales and their horizontal flips: the softmax of each
pass, upsampled bilinearly to the image, averaged; then the argmax, optionally after the full-resolution
dense CRF (:func:`wsl.segmentation.label_job`, scale s = 1). Two ways to size the input:

- ``size=None`` (DeepLab): each scale is relative to the image itself (aspect ratio kept), as the network
  was trained on random scales and crops of the images;
- ``size=S`` (SEC, Kolesnikov & Lampert, ECCV 2016): the image resized to a ``S * scale`` square, as
  SEC's network was trained on whole images resized to ``S x S``. This is what
  :func:`wsl.segmentation.sec.predict_probs` computes (tested equal).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsl.data.transforms import resize, to_tensor

__all__ = ["input_hw", "predict_probs", "predict_labels"]


def input_hw(image_hw: tuple[int, int], scale: float, size: int | None = None) -> tuple[int, int]:
    """The network input ``(h, w)`` of an image at ``scale``: ``S * scale`` square when ``size`` is given
    (SEC), else the image's own size times ``scale`` (DeepLab); at least 8 pixels a side."""
    if size is not None:
        side = max(8, round(size * scale))
        return side, side
    return max(8, round(image_hw[0] * scale)), max(8, round(image_hw[1] * scale))


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    scales: Sequence[float],
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    size: int | None = None,
) -> list[np.ndarray]:
    """Class probabilities ``(C, H, W)`` float32 per uint8 ``(H, W, 3)`` image: the softmax at each
    scale (and of the flipped image, flipped back), upsampled bilinearly to the image, averaged.

    Images whose inputs have the same size at a scale share one forward pass. ``model`` should be in
    eval mode.
    """
    if not scales:
        raise ValueError("predict_probs needs at least one scale")
    sums: list[torch.Tensor | None] = [None] * len(images)
    for scale in scales:
        groups: dict[tuple[int, int], list[int]] = {}
        for k, im in enumerate(images):
            groups.setdefault(input_hw(im.shape[:2], scale, size), []).append(k)
        for hw, members in groups.items():
            x = torch.stack([to_tensor(resize(images[k], hw), mean, std) for k in members]).to(device)
            probs = torch.softmax(model(x), dim=1)
            if flip:
                probs = (probs + torch.softmax(model(x.flip(-1)), dim=1).flip(-1)) / 2
            for row, k in enumerate(members):
                up = F.interpolate(
                    probs[row : row + 1], size=images[k].shape[:2], mode="bilinear", align_corners=False
                )[0]
                sums[k] = up if sums[k] is None else sums[k] + up
    return [(s / len(scales)).float().cpu().numpy() for s in sums]  # type: ignore[operator]


def predict_labels(probs: np.ndarray) -> np.ndarray:
    """The uint8 ``(H, W)`` label map (argmax over classes) of ``(C, H, W)`` probabilities."""
    return np.asarray(probs).argmax(axis=0).astype(np.uint8)
