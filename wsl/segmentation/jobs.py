"""Per-image jobs of seeds and pseudo-labels that run in CRF worker processes (:class:`CRFPool`).

Kept in a module of their own with light imports, so that ``spawn`` workers start quickly. Each job
takes plain arrays and returns a uint8 label map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wsl.segmentation.crf import dense_crf
from wsl.segmentation.seeds import irn_confident_seeds, seeds_from_maps


def seed_job(
    maps: np.ndarray,
    classes: np.ndarray,
    image: np.ndarray,
    saliency: np.ndarray | None,
    rule: dict[str, Any],
) -> np.ndarray:
    """One image's seeds: 0 background, ``classes`` foreground, 255 no cue.

    Args:
        maps: ``(K, H, W)`` max-normalised maps of the labelled classes at image resolution.
        classes: ``(K,)`` their labels in ``[1, 255)`` (class index + 1).
        image: uint8 ``(H, W, 3)`` original picture (used by the ``irn`` rule's label CRF).
        saliency: ``(H, W)`` gradient saliency (the ``saliency`` rule) or None.
        rule: ``background`` (threshold | saliency | irn), ``fg_thresh``, ``bg_thresh``, ``bg_fraction``,
            ``overlap``, ``irn_fg``, ``irn_bg``.
    """
    if rule["background"] == "irn":  # IRN's confident seeds (Ahn et al., CVPR 2019)
        return irn_confident_seeds(image, maps, classes, rule["irn_fg"], rule["irn_bg"])
    return seeds_from_maps(  # SEC's cues (Kolesnikov & Lampert, ECCV 2016)
        maps, classes, rule["fg_thresh"], rule["bg_thresh"], saliency, rule["bg_fraction"], rule["overlap"]
    )


def label_job(
    image: np.ndarray, probs: np.ndarray, keys: np.ndarray, crf: bool, floor: float, iterations: int
) -> np.ndarray:
    """One image's pseudo-label: ``keys[argmax]`` of the (CRF-refined) probabilities.

    Args:
        image: uint8 ``(H, W, 3)`` original picture.
        probs: ``(K, H, W)`` probabilities at image resolution over the labels ``keys`` ``(K,)``.
        crf: refine with SEC's dense CRF at full resolution (scale 1).
        floor: probabilities are clamped at this value first (SEC: 1e-5).
    """
    probs = np.maximum(probs, floor)
    if crf:
        probs = dense_crf(image, probs, scale=1.0, iterations=iterations)
    return np.asarray(keys)[probs.argmax(axis=0)].astype(np.uint8)
