"""Segmentation scores of stored outputs: CAM masks (and, with :mod:`wsl.evaluation.labelmaps`, seeds and
pseudo-labels) against ground-truth masks.

- CAM masks follow IRN's protocol (Ahn et al., CVPR 2019): a constant background plane before the argmax
  over the max-normalised maps of the image's labelled classes, at a fixed threshold (0.15) and over a grid
  of thresholds gathered in ONE pass (:class:`wsl.metrics.segmentation.ThresholdSweep`). The best threshold
  is chosen on the ground truth being scored (optimistic: papers do the same).
- Seeds (255 = no label): coverage, per-class precision and mIoU on labelled pixels, never by feeding 255
  to a confusion matrix (:class:`wsl.metrics.segmentation.SeedScoreAccumulator`).
- Pseudo-labels (complete label maps): the VOC devkit's mIoU, one confusion matrix over the whole set.

Missing files are counted (``missing``), unreadable or inconsistent ones counted (``failed``) and logged;
they never enter a matrix. Every value is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from wsl import io
from wsl.evaluation.common import (
    DatasetEvaluator,
    by_name,
    cams_of_labelled,
    class_names,
    log_gaps,
    reduced,
    require_masks,
    score_files,
)
from wsl.evaluation.labelmaps import score_labels, score_seeds
from wsl.evaluation.results import CamMaskResult, SegmentationResult
from wsl.metrics.merging import check_mergeable
from wsl.metrics.segmentation import ConfusionAccumulator, ThresholdSweep
from wsl.segmentation.seeds import cam_to_mask

__all__ = ["CamMaskEvaluator", "evaluate_cam_masks", "evaluate_segmentation", "sweep_thresholds"]

log = logging.getLogger(__name__)
Reduce = Callable[[DatasetEvaluator], DatasetEvaluator] | None


def sweep_thresholds(start: float = 0.0, stop: float = 0.6, step: float = 0.01) -> np.ndarray:
    """Background thresholds ``start .. stop`` (included) by ``step``, rounded to 6 decimals, ``(T,)``."""
    start, stop, step = float(start), float(stop), float(step)
    if not step > 0 or stop < start:
        raise ValueError(f"sweep thresholds: need step > 0 and stop >= start, got {start}, {stop}, {step}")
    return np.round(np.arange(start, stop + step / 2, step), 6)


class CamMaskEvaluator(DatasetEvaluator):
    """CAM masks of IRN's protocol at ``threshold`` and over ``thresholds`` (default
    :func:`sweep_thresholds`), accumulated over images of ``ds`` (``update`` / ``merge`` / ``compute``)."""

    def __init__(self, ds, threshold: float = 0.15, thresholds: np.ndarray | None = None) -> None:
        self.ds, self.threshold, self.names = ds, float(threshold), class_names(ds)
        self.thresholds = sweep_thresholds() if thresholds is None else np.asarray(thresholds, np.float64)
        self.fixed = ConfusionAccumulator(len(self.names))
        self.sweep = ThresholdSweep(len(self.names), self.thresholds)
        self.images = self.missing = self.failed = self.missing_maps = 0

    def update(self, i: int, rec: dict[str, np.ndarray]) -> None:
        """Score image ``i`` with its CAM record (:func:`wsl.io.load_cams` or ``load_full``).

        Raises ValueError / OSError (nothing counted) when the maps do not fit the ground truth or the
        ground truth is unreadable. A labelled class without a map is counted in ``missing_maps``, logged,
        and never predicted.
        """
        gt = self.ds.load_mask(i)
        classes, full, absent = cams_of_labelled(rec, self.ds.labels()[i])
        if full.shape[1:] != gt.shape:
            raise ValueError(f"maps {full.shape[1:]}, ground truth {gt.shape}")
        labels = classes + 1  # mask value = class index + 1
        pred = cam_to_mask(full, labels, self.threshold)
        self.sweep.update(full, labels, gt)  # checks everything before counting
        self.fixed.update(gt, pred)
        if absent:
            self.missing_maps += 1
            log.warning("%s: no map for labelled classes %s", self.ds.ids[i], absent)
        self.images += 1

    def merge(self, other: CamMaskEvaluator) -> CamMaskEvaluator:
        """Add another evaluator's counts (same thresholds and classes); returns self."""
        check_mergeable(self, other, "threshold", "thresholds", "names")
        self.fixed.merge(other.fixed)
        self.sweep.merge(other.sweep)
        self._merge_counts(other, "images", "missing_maps")
        return self

    def compute(self) -> CamMaskResult:
        """:class:`CamMaskResult`; raises ``ValueError`` when no image was scored."""
        if self.images == 0:
            raise ValueError(f"no CAM file could be scored ({self.missing} missing, {self.failed} failed)")
        fixed, sweep = self.fixed.compute(), self.sweep.compute()
        return CamMaskResult(
            miou=fixed.miou,
            threshold=self.threshold,
            per_class_iou=by_name(fixed.per_class_iou, self.names),
            miou_tuned=sweep.best_miou,
            best_threshold=sweep.best_threshold,
            per_class_iou_tuned=by_name(sweep.per_class_iou[sweep.best_index], self.names),
            sweep_thresholds=sweep.thresholds,
            sweep_miou=sweep.miou,
            images=self.images,
            missing=self.missing,
            failed=self.failed,
            missing_maps=self.missing_maps,
            failed_items=self.failures.as_dict(),
        )


def evaluate_cam_masks(
    ds,
    cams_dir: str | os.PathLike,
    threshold: float = 0.15,
    thresholds: np.ndarray | None = None,
    indices: Iterable[int] | None = None,
    reduce: Reduce = None,
) -> CamMaskResult:
    """Score the CAM files ``cams_dir/<id>.npz`` of ``ds`` (with masks) as IRN's CAM masks.

    Args:
        threshold: the fixed background threshold (IRN: 0.15).
        thresholds: the sweep (default :func:`sweep_thresholds`: 0.0 .. 0.6 by 0.01).
        indices: the images this process scores (default: all); reduce: applied before ``compute``
            (``wsl.dist.merge_all`` when sharded).

    Raises ValueError when ``ds`` has no masks or no file could be scored.
    """
    require_masks(ds)
    acc = CamMaskEvaluator(ds, threshold, thresholds)
    read = functools.partial(io.load_cams, num_classes=ds.num_classes)
    score_files(acc, ds, cams_dir, ".npz", read, indices, f"eval segmentation {ds.split}")
    acc = reduced(acc, reduce, ds)
    log_gaps("CAM files", cams_dir, acc.images, acc.missing, acc.failed)
    return acc.compute()


def evaluate_segmentation(
    ds,
    cams_dir: str | os.PathLike | None,
    seeds_dir: str | os.PathLike | None = None,
    labels_dir: str | os.PathLike | None = None,
    cam: str = "",
    threshold: float = 0.15,
    thresholds: np.ndarray | None = None,
    indices: Iterable[int] | None = None,
    reduce: Reduce = None,
) -> SegmentationResult:
    """CAM masks of ``cams_dir`` and, for the folders given that exist, seeds and pseudo-labels, as one
    :class:`SegmentationResult` (what :func:`wsl.evaluation.save_segmentation` writes)."""
    require_masks(ds)
    indices = None if indices is None else list(indices)
    cams = (
        None if cams_dir is None else evaluate_cam_masks(ds, cams_dir, threshold, thresholds, indices, reduce)
    )
    seeds = labels = None
    if seeds_dir is not None and Path(seeds_dir).is_dir():
        seeds = score_seeds(ds, seeds_dir, indices, reduce)
    if labels_dir is not None and Path(labels_dir).is_dir():
        labels = score_labels(ds, labels_dir, indices, reduce)
    return SegmentationResult(ds.split, cam, len(ds), cams, seeds, labels)
