"""Semantic segmentation metrics the VOC way: one confusion matrix over a whole set, IoU per class.

mIoU follows the PASCAL VOC devkit (Everingham et al.): ground-truth void (255) is ignored, the matrix is
accumulated over the whole set (not a mean of per-image IoUs), and the mean over classes skips classes that
appear in neither the ground truth nor the prediction (nanmean, as IRN and chainercv do; equal to the
devkit's plain mean whenever every class appears).

A prediction value outside ``[0, n)`` raises: with ``n * gt + pred`` a stray 255 would silently land in
another cell. Seeds, which carry 255 for "no label", are scored with :func:`seed_scores` instead.

:class:`ThresholdSweep` scores the CAM-to-mask protocol of IRN (Ahn et al., CVPR 2019) for a whole grid of
background thresholds in one pass over the data.

Every accumulator has ``update`` (one item), ``merge(other) -> self`` (what ``wsl.dist.merge_all`` uses
across processes) and ``compute`` (a frozen dataclass). Every metric is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsl.metrics.merging import check_mergeable

__all__ = [
    "ConfusionAccumulator",
    "IoUResult",
    "SeedScoreAccumulator",
    "SeedScores",
    "SweepResult",
    "ThresholdSweep",
    "confusion_matrix",
    "miou",
    "seed_scores",
]


def _check_labels(name: str, labels: np.ndarray, num_classes: int, allowed_extra: int | None) -> None:
    """Raise ValueError unless every value is in ``[0, num_classes)`` or equals ``allowed_extra``."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    if labels.size == 0:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if allowed_extra is not None:
        bad &= labels != allowed_extra
    if bad.any():
        value = labels[bad].flat[0]
        raise ValueError(f"{name} holds {value}, outside [0, {num_classes})")


def confusion_matrix(
    gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Confusion matrix of one label map (or a stack of them).

    Args:
        gt: integer ground truth, any shape, e.g. ``(H, W)``; ``ignore_index`` marks void pixels.
        pred: integer prediction, same shape; every value must lie in ``[0, num_classes)``.
        num_classes: n, background included.
        ignore_index: ground-truth value to ignore.

    Returns:
        int64 ``(n, n)`` matrix, rows ground truth, columns prediction.

    Raises:
        ValueError: shapes differ, or a prediction (or a non-void ground truth) lies outside ``[0, n)``.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} != pred shape {pred.shape}")
    _check_labels("pred", pred, num_classes, None)
    _check_labels("gt", gt, num_classes, ignore_index)
    keep = gt != ignore_index
    index = num_classes * gt[keep].astype(np.int64) + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class IoUResult:
    """mIoU of a confusion matrix (fractions in ``[0, 1]``).

    miou: nanmean of ``per_class_iou`` (NaN when no class has an IoU).
    per_class_iou: float64 ``(n,)``, NaN for a class absent from both ground truth and prediction.
    conf: ``(n, n)`` confusion matrix it was computed from (a copy), rows ground truth.
    """

    miou: float
    per_class_iou: np.ndarray
    conf: np.ndarray


def miou(conf: np.ndarray) -> IoUResult:
    """Mean IoU and per-class IoU of a confusion matrix.

    ``IoU_c = conf[c, c] / (row_c + col_c - conf[c, c])``; a class absent from both ground truth and
    prediction gets NaN and is left out of the mean (nanmean). NaN when no class has an IoU.

    Args:
        conf: ``(n, n)`` confusion matrix, rows ground truth.

    Returns:
        :class:`IoUResult` (what :meth:`ConfusionAccumulator.compute` returns).
    """
    counts = np.asarray(conf)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"conf must be square (n, n), got {counts.shape}")
    conf_f = counts.astype(np.float64)
    tp = np.diag(conf_f)
    union = conf_f.sum(axis=0) + conf_f.sum(axis=1) - tp
    iou = np.full(tp.shape, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    valid = ~np.isnan(iou)
    m = float(iou[valid].mean()) if valid.any() else float("nan")
    return IoUResult(miou=m, per_class_iou=iou, conf=counts.copy())


class ConfusionAccumulator:
    """Accumulates one confusion matrix over a dataset: ``update`` per image, ``merge`` across processes,
    ``compute`` once (:class:`IoUResult`)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.conf = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one label map (or a stack); see :func:`confusion_matrix`."""
        self.conf += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionAccumulator) -> ConfusionAccumulator:
        """Add the counts of another accumulator (e.g. from another process); returns self."""
        check_mergeable(self, other, "num_classes", "ignore_index")
        self.conf += other.conf
        return self

    def reset(self) -> None:
        self.conf[...] = 0

    def compute(self) -> IoUResult:
        """:class:`IoUResult` of everything seen so far."""
        return miou(self.conf)


@dataclass(frozen=True)
class SweepResult:
    """mIoU (fractions) of the CAM-to-mask protocol per background threshold (in the order given).

    thresholds: ``(T,)``; miou: ``(T,)``; per_class_iou: ``(T, n)`` (NaN for a class never seen);
    best_*: the best threshold (the lowest among equal best mIoUs), its index and mIoU.
    """

    thresholds: np.ndarray
    miou: np.ndarray
    per_class_iou: np.ndarray
    best_index: int
    best_threshold: float
    best_miou: float


class ThresholdSweep:
    """Per-threshold confusion matrices of the CAM-to-mask protocol, gathered in one pass.

    At threshold t the prediction is ``argmax([t, m_1, ..., m_K])`` over a constant background plane and the
    max-normalised maps of the K present classes (IRN). ``np.argmax`` takes the first maximum, so the
    background wins ties and the first map wins ties among classes; t is compared in the maps' dtype (the
    plane is built in that dtype, as ``np.pad`` does in IRN). Per pixel the first-argmax class ``a`` and its
    score ``s`` are computed once; the pixel predicts ``classes[a]`` exactly for the thresholds ``t < s``,
    i.e. the first ``m = #{t < s}`` thresholds in sorted order. A histogram over ``(m, gt, classes[a])``
    therefore holds every per-threshold matrix; cumulative sums over ``m`` recover them at the end.
    """

    def __init__(self, num_classes: int, thresholds: np.ndarray, ignore_index: int = 255) -> None:
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.ndim != 1 or thresholds.size == 0 or not np.isfinite(thresholds).all():
            raise ValueError("thresholds must be a non-empty 1-D array of finite values")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.thresholds = thresholds
        self._order = np.argsort(thresholds, kind="stable")
        self._sorted = thresholds[self._order]
        t = thresholds.size
        self._hist = np.zeros((t + 1, num_classes, num_classes), dtype=np.int64)

    def update(self, maps: np.ndarray, classes: np.ndarray, gt: np.ndarray) -> None:
        """Add one image.

        Args:
            maps: ``(K, H, W)`` float max-normalised maps of the present classes (K may be 0).
            classes: ``(K,)`` their labels in ``[1, n)``.
            gt: ``(H, W)`` integer ground truth with ``ignore_index`` for void.
        """
        maps = np.asarray(maps)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        gt = np.asarray(gt)
        n = self.num_classes
        if maps.ndim != 3 or maps.shape[0] != classes.size or maps.shape[1:] != gt.shape:
            raise ValueError(f"maps {maps.shape}, classes {classes.shape} and gt {gt.shape} do not match")
        if classes.size and ((classes < 1) | (classes >= n)).any():
            raise ValueError(f"classes must lie in [1, {n}), got {classes}")
        _check_labels("gt", gt, n, self.ignore_index)
        keep = gt != self.ignore_index
        gt_kept = gt[keep].astype(np.int64)
        if classes.size == 0:
            m = np.zeros(gt_kept.shape, dtype=np.int64)
            label = np.zeros(gt_kept.shape, dtype=np.int64)
        else:
            if not np.issubdtype(maps.dtype, np.floating) or not np.isfinite(maps).all():
                raise ValueError("maps must be finite floats")
            flat = maps[:, keep]  # (K, P)
            best = flat.argmax(axis=0)
            score = np.take_along_axis(flat, best[None], axis=0)[0]
            grid = self._sorted.astype(maps.dtype)  # compare in the maps' dtype, as the padded plane does
            m = np.searchsorted(grid, score, side="left")  # number of thresholds t < score
            label = classes[best]
        index = (m * n + gt_kept) * n + label
        self._hist += np.bincount(index, minlength=self._hist.size).reshape(self._hist.shape)

    def merge(self, other: ThresholdSweep) -> ThresholdSweep:
        """Add the histogram of another sweep over the same thresholds (same order); returns self."""
        check_mergeable(self, other, "num_classes", "ignore_index", "thresholds")
        self._hist += other._hist
        return self

    def confusion_matrices(self) -> np.ndarray:
        """int64 ``(T, n, n)`` matrices, one per threshold in the order given."""
        hist = self._hist
        # A pixel in bucket m is foreground for sorted thresholds j < m and background for j >= m.
        fg = np.cumsum(hist[::-1], axis=0)[::-1][1:]  # fg[j] = sum over m > j
        bg_rows = np.cumsum(hist.sum(axis=2), axis=0)[:-1]  # bg_rows[j] = sum over m <= j, per gt row
        conf = fg.copy()
        conf[:, :, 0] += bg_rows
        out = np.empty_like(conf)
        out[self._order] = conf
        return out

    def compute(self) -> SweepResult:
        """mIoU per threshold and the best threshold (the lowest one among equal best mIoUs)."""
        results = [miou(c) for c in self.confusion_matrices()]
        mious = np.array([r.miou for r in results])
        per_class = np.stack([r.per_class_iou for r in results])
        if np.isnan(mious).all():
            best = 0
        else:
            # Among equal best values take the lowest threshold.
            cand = np.flatnonzero(mious == np.nanmax(mious))
            best = int(cand[np.argmin(self.thresholds[cand])])
        return SweepResult(
            thresholds=self.thresholds.copy(),
            miou=mious,
            per_class_iou=per_class,
            best_index=best,
            best_threshold=float(self.thresholds[best]),
            best_miou=float(mious[best]),
        )


@dataclass(frozen=True)
class SeedScores:
    """Quality of seeds (255 = unlabelled) against ground truth; every value a fraction in ``[0, 1]``.

    coverage: labelled seed pixels among all pixels (the one definition wsl uses: it needs no GT, so
        stage=seeds, stage=eval and a split without masks all report the same number).
    precision: ``(n,)`` per class, of the pixels the seeds label c (on non-void GT), the fraction whose GT is
        c; NaN for a class the seeds never use. mean_precision is its nanmean.
    miou, per_class_iou: mIoU of the confusion matrix over labelled, non-void pixels only (``(n,)``).
    conf: int64 ``(n, n)`` confusion matrix over labelled, non-void pixels.
    """

    coverage: float
    precision: np.ndarray
    mean_precision: float
    miou: float
    per_class_iou: np.ndarray
    conf: np.ndarray


class SeedScoreAccumulator:
    """Accumulates :class:`SeedScores` over a dataset; 255 in seeds never reaches the confusion matrix."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.conf = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.total_pixels = 0
        self.labelled_pixels = 0  # labelled seed pixels, all of them

    def update(self, gt: np.ndarray, seed: np.ndarray) -> None:
        """Add one image: ``gt`` and ``seed`` integer ``(H, W)``, 255 = void / unlabelled."""
        gt = np.asarray(gt)
        seed = np.asarray(seed)
        if gt.shape != seed.shape:
            raise ValueError(f"gt shape {gt.shape} != seed shape {seed.shape}")
        _check_labels("seed", seed, self.num_classes, self.ignore_index)
        labelled = seed != self.ignore_index
        both = labelled & (gt != self.ignore_index)
        self.conf += confusion_matrix(gt[both], seed[both], self.num_classes, self.ignore_index)
        self.total_pixels += int(seed.size)
        self.labelled_pixels += int(labelled.sum())

    def merge(self, other: SeedScoreAccumulator) -> SeedScoreAccumulator:
        """Add the counts of another accumulator (e.g. from another process); returns self."""
        check_mergeable(self, other, "num_classes", "ignore_index")
        self.conf += other.conf
        self.total_pixels += other.total_pixels
        self.labelled_pixels += other.labelled_pixels
        return self

    def compute(self) -> SeedScores:
        """:class:`SeedScores` of everything seen so far (NaN where nothing was seen)."""
        conf = self.conf
        col = conf.sum(axis=0).astype(np.float64)
        precision = np.full(self.num_classes, np.nan)
        np.divide(np.diag(conf), col, out=precision, where=col > 0)
        used = ~np.isnan(precision)
        scores = miou(conf)
        nan = float("nan")
        return SeedScores(
            coverage=self.labelled_pixels / self.total_pixels if self.total_pixels else nan,
            precision=precision,
            mean_precision=float(precision[used].mean()) if used.any() else nan,
            miou=scores.miou,
            per_class_iou=scores.per_class_iou,
            conf=conf.copy(),
        )


def seed_scores(gt: np.ndarray, seed: np.ndarray, num_classes: int, ignore_index: int = 255) -> SeedScores:
    """:class:`SeedScores` of one image (``gt``, ``seed``: integer ``(H, W)``, 255 = void / unlabelled)."""
    acc = SeedScoreAccumulator(num_classes, ignore_index)
    acc.update(gt, seed)
    return acc.compute()
