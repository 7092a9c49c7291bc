"""Localization error (Grad-CAM protocol), pointing game and CorLoc, for multi-label images.

Every quantity is computed per (image, labelled class) as ``evaluation.md`` defines:

* ground truth per image: ``boxes`` ``(M, 4)`` inclusive ``x0, y0, x1, y1`` in the map's pixels,
  ``labels`` ``(M,)`` class indices and optional ``difficult`` ``(M,)`` flags (VOC);
* a labelled class ``c`` is *evaluable* when it has at least one non-difficult box; difficult
  boxes still count as matches; a class whose boxes are all difficult is ignored for that image:
  it is neither a target nor an error (for top-k it is skipped in the ranking);
* an image with no evaluable class is left out of every metric (counted in ``skipped_images``);
* GT boxes partly outside the map are clipped; one entirely outside raises ``ValueError``;
* maps are ``(K, H, W)`` arrays indexed by class, or a mapping ``class -> (H, W)``; NaN / inf
  raise ``ValueError``.

Protocols: Grad-CAM (Selvaraju et al., ICCV 2017): binarise each class map at 15 % of its maximum,
box the largest 8-connected segment, correct when IoU >= 0.5 with a GT box of that class. Top-1:
the top-ranked class is a labelled class and its box is correct; top-5: some class among the top 5
is; GT-known: per (image, labelled class). Pointing game (Zhang et al., ECCV 2016): the maximum of
the class map lies within 15 px of a GT box of the class. CorLoc (Deselaers et al., ECCV 2010):
per class, the fraction of its images whose box is correct; the mean is over classes seen.
All results are fractions in ``[0, 1]`` (percent only on display).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from wsl.localization.boxes import boxes_from_map, check_map
from wsl.metrics.boxes import box_iou, clip_boxes
from wsl.metrics.merging import check_mergeable

__all__ = ["LocalizationAccumulator", "LocalizationScores", "gradcam_box", "localized", "pointing_hit"]


def gradcam_box(score_map: np.ndarray, threshold: float = 0.15) -> np.ndarray:
    """The Grad-CAM protocol box of one map: int64 ``(4,)``, or ``(0,)`` when nothing is above."""
    boxes = boxes_from_map(score_map, threshold, mode="largest")
    return boxes[0] if len(boxes) else np.zeros(0, dtype=np.int64)


def localized(box: np.ndarray, gt_boxes: np.ndarray, iou_threshold: float = 0.5) -> bool:
    """True when ``box`` (inclusive ``(4,)``; empty = no box) has IoU >= threshold with a GT box."""
    if np.size(box) == 0 or len(gt_boxes) == 0:
        return False
    return bool(box_iou(box, gt_boxes).max() >= iou_threshold)


def pointing_hit(score_map: np.ndarray, gt_boxes: np.ndarray, tolerance: float = 15.0) -> bool:
    """Pointing game hit (Zhang et al. 2016): the map's maximum within ``tolerance`` px of a box.

    The point is the first maximum in row-major order; the distance is the Euclidean distance
    from that pixel to the nearest pixel of an inclusive box (0 inside). A constant map points
    nowhere and always misses.
    """
    arr = check_map(score_map)
    if arr.max() == arr.min() or len(gt_boxes) == 0:
        return False
    y, x = np.unravel_index(int(np.argmax(arr)), arr.shape)
    gt = np.asarray(gt_boxes, dtype=np.float64)
    dx = np.maximum(np.maximum(gt[:, 0] - x, x - gt[:, 2]), 0.0)
    dy = np.maximum(np.maximum(gt[:, 1] - y, y - gt[:, 3]), 0.0)
    return bool((np.hypot(dx, dy) <= tolerance).any())


def _class_map(maps, c: int) -> np.ndarray:
    try:
        return maps[c]
    except (KeyError, IndexError) as err:
        raise ValueError(f"no map for class {c}") from err


@dataclass(frozen=True)
class LocalizationScores:
    """What :meth:`LocalizationAccumulator.compute` returns; every metric a fraction in ``[0, 1]``.

    top1_loc_err, topk_loc_err: localization error of the top-1 / top-``topk`` classes (per image).
    gt_known_loc, pointing_game: per (image, evaluable class) pair.
    corloc: mean over the classes seen of ``corloc_per_class`` (class index -> fraction).
    images: images scored; pairs: (image, evaluable class) pairs; skipped_images: images left out
    (no evaluable class).
    """

    top1_loc_err: float
    topk_loc_err: float
    topk: int
    gt_known_loc: float
    pointing_game: float
    corloc: float
    corloc_per_class: dict[int, float]
    images: int
    pairs: int
    skipped_images: int


class LocalizationAccumulator:
    """Top-1 / top-5 / GT-known localization, pointing game and CorLoc over a dataset.

    ``update`` per image, ``merge`` across processes, ``compute`` -> :class:`LocalizationScores`.

    Args:
        threshold: fraction of the map maximum for the Grad-CAM box (0.15).
        iou_threshold: IoU for a correct box (0.5).
        topk: the k of the top-k error (5).
        tolerance: pointing game tolerance in pixels (15).
    """

    def __init__(
        self, threshold: float = 0.15, iou_threshold: float = 0.5, topk: int = 5, tolerance: float = 15.0
    ) -> None:
        self.threshold, self.iou_threshold = float(threshold), float(iou_threshold)
        self.topk, self.tolerance = int(topk), float(tolerance)
        self.images = self.top1 = self.topk_hits = self.skipped = 0
        self.pairs = self.gt_known = self.points = 0
        self.class_total: dict[int, int] = {}
        self.class_hits: dict[int, int] = {}

    def update(self, maps, scores, boxes, labels, difficult=None) -> None:
        """Add one image.

        Args:
            maps: ``(K, H, W)`` class maps, or a mapping class -> ``(H, W)`` holding at least the
                labelled classes (a predicted class outside the label is wrong whatever its map).
            scores: ``(K,)`` class scores (logits or probabilities: only their order is used).
            boxes: ``(M, 4)`` inclusive GT boxes; labels: ``(M,)`` their classes; difficult:
                ``(M,)`` bool or None.
        """
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if not np.isfinite(scores).all():
            raise ValueError("scores contain NaN or inf")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        difficult = (
            np.zeros(labels.shape, bool) if difficult is None else np.asarray(difficult, bool).reshape(-1)
        )
        if len(labels) != len(np.asarray(boxes).reshape(-1, 4)) or difficult.shape != labels.shape:
            raise ValueError("boxes, labels and difficult must have the same length")
        if not isinstance(maps, Mapping):
            maps = np.asarray(maps)
            if maps.ndim != 3 or maps.shape[0] != scores.size:
                raise ValueError(f"maps must be (K, H, W) with K = {scores.size}, got {maps.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= scores.size):
            raise ValueError(f"labels must lie in [0, {scores.size})")
        present = np.unique(labels)
        ignored = {int(c) for c in present if difficult[labels == c].all()}
        targets = [int(c) for c in present if int(c) not in ignored]
        if not targets:  # no GT box, or only difficult ones: left out
            self.skipped += 1
            return
        class_maps = {c: check_map(_class_map(maps, c), f"map of class {c}") for c in targets}
        shape = class_maps[targets[0]].shape
        if any(m.shape != shape for m in class_maps.values()):
            raise ValueError("all class maps of an image must have the same shape")
        gt = clip_boxes(boxes, shape[0], shape[1], "boxes")
        verdict: dict[int, bool] = {}
        for c in targets:
            cmap = class_maps[c]
            ok = localized(gradcam_box(cmap, self.threshold), gt[labels == c], self.iou_threshold)
            verdict[c] = ok
            self.pairs += 1
            self.gt_known += ok
            self.points += pointing_hit(cmap, gt[labels == c], self.tolerance)
            self.class_total[c] = self.class_total.get(c, 0) + 1
            self.class_hits[c] = self.class_hits.get(c, 0) + ok
        ranking = [int(c) for c in np.argsort(-scores, kind="stable") if int(c) not in ignored][: self.topk]
        correct = [verdict.get(c, False) for c in ranking]
        self.images += 1
        self.top1 += bool(correct[:1] and correct[0])
        self.topk_hits += any(correct)

    def merge(self, other: LocalizationAccumulator) -> LocalizationAccumulator:
        """Add the counts of another accumulator with the same settings; returns self."""
        check_mergeable(self, other, "threshold", "iou_threshold", "topk", "tolerance")
        for name in ("images", "top1", "topk_hits", "skipped", "pairs", "gt_known", "points"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.class_total, other.class_total), (self.class_hits, other.class_hits)):
            for c, n in theirs.items():
                mine[c] = mine.get(c, 0) + n
        return self

    def compute(self) -> LocalizationScores:
        """:class:`LocalizationScores` (fractions); raises ``ValueError`` before any scored image."""
        if self.images == 0:
            raise ValueError("no image with an evaluable class was added")
        per_class = {c: self.class_hits[c] / n for c, n in sorted(self.class_total.items())}
        return LocalizationScores(
            top1_loc_err=1.0 - self.top1 / self.images,
            topk_loc_err=1.0 - self.topk_hits / self.images,
            topk=self.topk,
            gt_known_loc=self.gt_known / self.pairs,
            pointing_game=self.points / self.pairs,
            corloc=float(np.mean(list(per_class.values()))),
            corloc_per_class=per_class,
            images=self.images,
            pairs=self.pairs,
            skipped_images=self.skipped,
        )
