"""MaxBoxAcc (V1 / V2) and PxAP, reproducing wsolevaluation (Choe et al., CVPR 2020) exactly.

Both metrics are GT-known: one map per (image, class) scored against that class's boxes or mask.
Maps go through wsolevaluation's preprocessing: min-max normalisation to ``[0, 1]`` (a constant map
becomes all zeros); MaxBoxAcc then quantises to ``uint8(map * 255)``. A map with NaN or inf raises
``ValueError`` (wsolevaluation silently turns a NaN map into zeros; we refuse to score a broken
map). Functions never modify their inputs; accumulators keep only counts and histograms, merge
(``merge(other) -> self``) and compute frozen dataclasses. Every value is a fraction in ``[0, 1]``
(wsolevaluation prints percentages; we display percent only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from wsl.localization.boxes import check_map, minmax_normalize, quantize_map, sweep_boxes
from wsl.metrics.boxes import box_iou, clip_boxes
from wsl.metrics.merging import check_mergeable

__all__ = [
    "MaxBoxAccResult",
    "MaxBoxAccumulator",
    "PxAPAccumulator",
    "PxAPResult",
    "best_iou_per_threshold",
    "canonical_levels",
    "default_thresholds",
    "max_box_acc",
    "pxap",
    "threshold_levels",
]


def threshold_levels(u8_max: int, thresholds) -> np.ndarray:
    """``int(tau * u8_max)`` for every ``tau`` (truncation toward zero, as wsolevaluation), (T,)."""
    taus = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not np.isfinite(taus).all():
        raise ValueError("thresholds must be finite")
    return (taus * float(u8_max)).astype(np.int64)


def canonical_levels(u8: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Map each level ``t`` to the largest value of ``u8`` that is ``<= t`` (``-1`` when none).

    ``u8 > t`` and ``u8 > canonical(t)`` are the same binary image, so work is done once per
    canonical level. Levels ``>= u8.max()`` (empty foreground) map to ``u8.max()``.
    """
    present = np.flatnonzero(cv2.calcHist([u8], [0], None, [256], [0, 256]).ravel())
    pos = np.searchsorted(present, np.minimum(levels, 255), side="right") - 1
    return np.where(pos >= 0, present[np.maximum(pos, 0)], -1)


def default_thresholds(step: float = 0.01) -> np.ndarray:
    """wsolevaluation's CAM thresholds ``np.arange(0, 1, step)`` (100 or 1,000 values)."""
    return np.arange(0, 1, step)


def _thresholds(thresholds) -> np.ndarray:
    taus = np.asarray(default_thresholds() if thresholds is None else thresholds, dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0 or not np.isfinite(taus).all():
        raise ValueError("thresholds must be a non-empty 1-D array of finite values")
    return taus


def best_iou_per_threshold(
    score_map: np.ndarray, gt_boxes, thresholds, multi_contour: bool = False, method: str = "auto"
) -> np.ndarray:
    """Best box-GT IoU of one map at every CAM threshold, ``(T,)`` float64.

    The boxes are wsolevaluation's (``wsl.localization.sweep_boxes``); GT boxes are
    inclusive ``(M, 4)``, clipped to the map (``wsl.metrics.boxes.clip_boxes``); ``M = 0`` raises.
    The work is done once per distinct binary image, not once per threshold.
    """
    arr = check_map(score_map)
    gt = clip_boxes(gt_boxes, arr.shape[0], arr.shape[1], "gt_boxes")
    if gt.shape[0] == 0:
        raise ValueError("an image with no GT box cannot be scored by MaxBoxAcc; leave it out")
    u8 = quantize_map(arr)
    canon = canonical_levels(u8, threshold_levels(int(u8.max()), _thresholds(thresholds)))
    present = np.zeros(257, dtype=bool)
    present[canon + 1] = True
    levels = np.flatnonzero(present) - 1
    inverse = np.cumsum(present)[canon + 1] - 1  # position of each threshold's level in `levels`
    boxes, index = sweep_boxes(u8, levels, multi_contour, method)
    best = np.full(levels.size, -np.inf)
    np.maximum.at(best, index, box_iou(boxes, gt).max(axis=1))
    return best[inverse]


@dataclass(frozen=True)
class MaxBoxAccResult:
    """What :meth:`MaxBoxAccumulator.compute` returns; accuracies are fractions in ``[0, 1]``.

    thresholds: ``(T,)`` CAM thresholds; iou_thresholds: the deltas.
    box_acc: delta -> ``(T,)`` BoxAcc curve (fraction of images whose best box has IoU >= delta).
    best_acc, best_index, best_threshold: delta -> MaxBoxAcc(delta) = max of the curve, at its first
        maximum (the CAM threshold is tuned on GT, as wsolevaluation does).
    max_box_acc: mean of ``best_acc`` over the deltas (V1: one delta; V2: 0.3, 0.5, 0.7).
    count: images (maps) scored.
    """

    thresholds: np.ndarray
    iou_thresholds: tuple[float, ...]
    box_acc: dict[float, np.ndarray]
    best_acc: dict[float, float]
    best_index: dict[float, int]
    best_threshold: dict[float, float]
    max_box_acc: float
    count: int


class MaxBoxAccumulator:
    """Dataset accumulator for MaxBoxAcc: memory is ``O(#IoU thresholds x #CAM thresholds)``.

    ``MaxBoxAccumulator(thresholds, (0.5,), multi_contour=False)`` is MaxBoxAcc (V1);
    ``MaxBoxAccumulator(thresholds, (0.3, 0.5, 0.7), multi_contour=True)`` is MaxBoxAccV2.
    """

    def __init__(
        self,
        thresholds=None,
        iou_thresholds: Sequence[float] = (0.5,),
        multi_contour: bool = False,
        method: str = "auto",
    ) -> None:
        self.thresholds = _thresholds(thresholds)
        self.iou_thresholds = tuple(float(d) for d in iou_thresholds)
        if not self.iou_thresholds:
            raise ValueError("iou_thresholds must not be empty")
        self.multi_contour = bool(multi_contour)
        self.method = method
        self.hits = np.zeros((len(self.iou_thresholds), self.thresholds.size), dtype=np.int64)
        self.count = 0

    def update(self, score_map: np.ndarray, gt_boxes) -> None:
        """Add one ``(H, W)`` map and its ``(M, 4)`` inclusive GT boxes (``M >= 1``)."""
        best = best_iou_per_threshold(score_map, gt_boxes, self.thresholds, self.multi_contour, self.method)
        self.hits += best[None, :] >= np.asarray(self.iou_thresholds)[:, None]
        self.count += 1

    def merge(self, other: MaxBoxAccumulator) -> MaxBoxAccumulator:
        """Add the hits of another accumulator with the same thresholds, deltas and contour rule (the
        ``method`` may differ: every method gives the same boxes); returns self."""
        check_mergeable(self, other, "thresholds", "iou_thresholds", "multi_contour")
        self.hits += other.hits
        self.count += other.count
        return self

    def compute(self) -> MaxBoxAccResult:
        """The curves and MaxBoxAcc (:class:`MaxBoxAccResult`); raises ``ValueError`` before any update."""
        if self.count == 0:
            raise ValueError("MaxBoxAccumulator.compute() called before any update()")
        acc = self.hits / float(self.count)
        curves, value, index, threshold = {}, {}, {}, {}
        for d, row in zip(self.iou_thresholds, acc):
            i = int(np.argmax(row))
            curves[d], value[d], index[d], threshold[d] = row, float(row[i]), i, float(self.thresholds[i])
        return MaxBoxAccResult(
            thresholds=self.thresholds.copy(),
            iou_thresholds=self.iou_thresholds,
            box_acc=curves,
            best_acc=value,
            best_index=index,
            best_threshold=threshold,
            max_box_acc=float(np.mean(list(value.values()))),
            count=self.count,
        )


def max_box_acc(
    maps: Iterable[np.ndarray],
    gt_boxes: Iterable,
    thresholds=None,
    iou_thresholds: Sequence[float] = (0.5,),
    multi_contour: bool = False,
) -> MaxBoxAccResult:
    """MaxBoxAcc of ``maps`` (each ``(H, W)``) against ``gt_boxes`` (each ``(M_i, 4)``), fractions.

    V1: ``iou_thresholds=(0.5,)``, ``multi_contour=False``; V2: ``(0.3, 0.5, 0.7)``, True.
    ``thresholds`` default to ``np.arange(0, 1, 0.01)``. See :class:`MaxBoxAccResult`.
    """
    acc = MaxBoxAccumulator(thresholds, iou_thresholds, multi_contour)
    maps, gt_boxes = list(maps), list(gt_boxes)
    if len(maps) != len(gt_boxes):
        raise ValueError(f"{len(maps)} maps but {len(gt_boxes)} GT box arrays")
    for m, b in zip(maps, gt_boxes):
        acc.update(m, b)
    return acc.compute()


@dataclass(frozen=True)
class PxAPResult:
    """What :meth:`PxAPAccumulator.compute` returns.

    pxap: area under the pixel precision-recall curve, a fraction in ``[0, 1]``.
    precision, recall: ``(P,)`` the curve, from the highest threshold down, at the thresholds where
        ``tp + fp > 0``; thresholds: ``(P,)`` the lower bin edge (map value) of each point.
    """

    pxap: float
    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


class PxAPAccumulator:
    """Pixel average precision (wsolevaluation's ``MaskEvaluator``), accumulated as histograms.

    Each map is min-max normalised; its values over GT-foreground (mask 1) and GT-background
    (mask 0) pixels go into histograms whose right bin edges are the thresholds plus
    ``{1, 2, 3}``; mask 255 is ignored and any other mask value raises ``ValueError``.
    """

    def __init__(self, thresholds=None) -> None:
        self.thresholds = _thresholds(thresholds)
        if (np.diff(self.thresholds) <= 0).any():
            raise ValueError("PxAP thresholds must be strictly increasing")
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        self.pos = np.zeros(self.edges.size - 1, dtype=np.int64)
        self.neg = np.zeros(self.edges.size - 1, dtype=np.int64)

    def update(self, score_map: np.ndarray, mask: np.ndarray) -> None:
        """Add one ``(H, W)`` map with its ``(H, W)`` mask of 0 / 1 / 255 (bool also accepted)."""
        norm = minmax_normalize(score_map)
        mask = np.asarray(mask)
        if mask.shape != norm.shape:
            raise ValueError(f"mask shape {mask.shape} differs from map shape {norm.shape}")
        if not np.isin(mask, (0, 1, 255)).all():
            raise ValueError("mask values must be 0 (background), 1 (foreground) or 255 (ignored)")
        self.pos += np.histogram(norm[mask == 1], bins=self.edges)[0]
        self.neg += np.histogram(norm[mask == 0], bins=self.edges)[0]

    def merge(self, other: PxAPAccumulator) -> PxAPAccumulator:
        """Add the histograms of another accumulator with the same thresholds; returns self."""
        check_mergeable(self, other, "thresholds")
        self.pos += other.pos
        self.neg += other.neg
        return self

    def compute(self) -> PxAPResult:
        """:class:`PxAPResult`: PR points where ``tp + fp > 0``.

        ``PxAP = sum(precision[1:] * diff(recall))`` (wsolevaluation's formula, as a fraction) with
        points ordered from the highest threshold down. Raises ``ValueError`` when no GT-foreground
        pixel was seen.
        """
        tp = self.pos[::-1].cumsum().astype(np.float64)
        fp = self.neg[::-1].cumsum().astype(np.float64)
        if tp[-1] <= 0:
            raise ValueError("PxAP needs at least one GT-foreground pixel")
        keep = (tp + fp) > 0
        precision = tp[keep] / (tp[keep] + fp[keep])
        recall = tp[keep] / tp[-1]
        lower_edges = self.edges[:-1][::-1][keep]
        return PxAPResult(
            pxap=float(np.sum(precision[1:] * np.diff(recall))),
            precision=precision,
            recall=recall,
            thresholds=lower_edges,
        )


def pxap(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], thresholds=None) -> PxAPResult:
    """PxAP (a fraction) of ``maps`` (each ``(H, W)``) against ``masks`` (0 / 1 / 255), with the PR curve;
    see :class:`PxAPAccumulator`."""
    acc = PxAPAccumulator(thresholds)
    maps, masks = list(maps), list(masks)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    for m, k in zip(maps, masks):
        acc.update(m, k)
    return acc.compute()
