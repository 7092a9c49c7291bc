"""Label maps (``<id>.png``) against ground-truth masks: seeds (255 = no label) and pseudo-labels.

Seeds are scored with coverage, per-class precision and mIoU on their labelled pixels, never by feeding 255
to a confusion matrix (:class:`wsl.metrics.segmentation.SeedScoreAccumulator`); pseudo-labels, complete
label maps, with the VOC devkit's mIoU (one confusion matrix over the whole set); a split without masks
still gets the labelled fraction of its seeds. Missing files are counted, unreadable or inconsistent ones
counted and logged. Every value is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from wsl import io
from wsl.evaluation.common import (
    DatasetEvaluator,
    by_name,
    class_names,
    log_gaps,
    or_none,
    reduced,
    require_masks,
    score_files,
)
from wsl.evaluation.results import LabelResult, SeedResult
from wsl.metrics.merging import check_mergeable
from wsl.metrics.segmentation import ConfusionAccumulator, SeedScoreAccumulator

__all__ = [
    "LabelEvaluator",
    "SeedCoverage",
    "SeedCoverageEvaluator",
    "SeedEvaluator",
    "seed_coverage",
    "score_labels",
    "score_seeds",
]

Reduce = Callable[[DatasetEvaluator], DatasetEvaluator] | None


class _LabelMapEvaluator(DatasetEvaluator):
    """Label maps (seeds or pseudo-labels, ``(H, W)`` uint8) of ``ds`` against its masks."""

    def __init__(self, ds, acc) -> None:
        self.ds, self.names, self.acc = ds, class_names(ds), acc
        self.images = self.missing = self.failed = 0

    def update(self, i: int, pred: np.ndarray) -> None:
        """Score the ``(H, W)`` label map of image ``i``. ValueError / OSError (nothing counted) when it
        does not fit the ground truth, holds a value outside the classes, or the GT is unreadable."""
        gt = self.ds.load_mask(i)
        if pred.shape != gt.shape:
            raise ValueError(f"shape {pred.shape}, ground truth {gt.shape}")
        self.acc.update(gt, pred)
        self.images += 1

    def merge(self, other: _LabelMapEvaluator) -> _LabelMapEvaluator:
        """Add another evaluator's counts (same type and classes); returns self."""
        check_mergeable(self, other, "names")
        self.acc.merge(other.acc)
        self._merge_counts(other, "images")
        return self


class SeedEvaluator(_LabelMapEvaluator):
    """Seeds (255 = no label) of ``ds``: ``update(i, seed)`` / ``merge`` / ``compute`` -> SeedResult."""

    def __init__(self, ds) -> None:
        super().__init__(ds, SeedScoreAccumulator(len(class_names(ds))))

    def compute(self) -> SeedResult:
        """:class:`SeedResult` (None for what nothing was scored for)."""
        s = self.acc.compute()
        return SeedResult(
            coverage=or_none(s.coverage),
            mean_precision=or_none(s.mean_precision),
            precision=by_name(s.precision, self.names),
            miou=or_none(s.miou),
            per_class_iou=by_name(s.per_class_iou, self.names),
            images=self.images,
            missing=self.missing,
            failed=self.failed,
            failed_items=self.failures.as_dict(),
        )


class LabelEvaluator(_LabelMapEvaluator):
    """Pseudo-labels (complete label maps; a 255 is an error) of ``ds``: ``compute`` -> LabelResult."""

    def __init__(self, ds) -> None:
        super().__init__(ds, ConfusionAccumulator(len(class_names(ds))))

    def compute(self) -> LabelResult:
        """:class:`LabelResult` (miou None when nothing was scored)."""
        r = self.acc.compute()
        return LabelResult(
            miou=or_none(r.miou),
            per_class_iou=by_name(r.per_class_iou, self.names),
            images=self.images,
            missing=self.missing,
            failed=self.failed,
            failed_items=self.failures.as_dict(),
        )


@dataclass(frozen=True)
class SeedCoverage:
    """Seed coverage: labelled seed pixels / all pixels of the seed PNGs (None when none was read); needs
    no ground truth, and is the same number as :attr:`SeedResult.coverage`."""

    coverage: float | None
    images: int
    missing: int
    failed: int


class SeedCoverageEvaluator(DatasetEvaluator):
    """The coverage of the seeds of ``ds`` (any split, masks or not): ``update(i, seed)``."""

    def __init__(self, ds) -> None:
        self.ds = ds
        self.labelled = self.total = self.images = self.missing = self.failed = 0

    def update(self, i: int, seed: np.ndarray) -> None:
        """Add the ``(H, W)`` seed map of image ``i`` (255 = no label)."""
        seed = np.asarray(seed)
        self.labelled += int((seed != 255).sum())
        self.total += int(seed.size)
        self.images += 1

    def merge(self, other: SeedCoverageEvaluator) -> SeedCoverageEvaluator:
        """Add another evaluator's counts; returns self."""
        check_mergeable(self, other)
        self._merge_counts(other, "labelled", "total", "images")
        return self

    def compute(self) -> SeedCoverage:
        """:class:`SeedCoverage`."""
        frac = self.labelled / self.total if self.total else None
        return SeedCoverage(frac, self.images, self.missing, self.failed)


def _score_pngs(acc, ds, folder, indices, reduce: Reduce, what: str):
    """Feed the PNGs ``folder/<id>.png`` of ``indices`` to ``acc``, reduce over ranks, log the gaps."""
    score_files(acc, ds, folder, ".png", io.read_label_png, indices, f"score {what} {ds.split}")
    acc = reduced(acc, reduce, ds)
    log_gaps(what, folder, acc.images, acc.missing, acc.failed)
    return acc.compute()


def score_seeds(
    ds, folder: str | os.PathLike, indices: Iterable[int] | None = None, reduce: Reduce = None
) -> SeedResult:
    """Score the seed PNGs ``folder/<id>.png`` (255 = no label) of ``ds`` (with masks)."""
    require_masks(ds)
    return _score_pngs(SeedEvaluator(ds), ds, folder, indices, reduce, "seeds")


def score_labels(
    ds, folder: str | os.PathLike, indices: Iterable[int] | None = None, reduce: Reduce = None
) -> LabelResult:
    """Score the pseudo-label PNGs ``folder/<id>.png`` of ``ds`` (with masks)."""
    require_masks(ds)
    return _score_pngs(LabelEvaluator(ds), ds, folder, indices, reduce, "label maps")


def seed_coverage(
    ds, folder: str | os.PathLike, indices: Iterable[int] | None = None, reduce: Reduce = None
) -> float | None:
    """Labelled seed pixels / all pixels of the seed PNGs ``folder/<id>.png`` (None when none exists)."""
    return _score_pngs(SeedCoverageEvaluator(ds), ds, folder, indices, reduce, "seeds").coverage
