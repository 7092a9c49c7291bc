"""Scoring label folders against ground truth, shared by stage=seeds, stage=labels and stage=eval.

Seeds carry 255 for "no cue": they are scored with coverage and per-class precision on their labelled
pixels (:class:`wsl.metrics.segmentation.SeedScoreAccumulator`), never by feeding 255 to a confusion
matrix. Pseudo-labels are complete label maps and get a plain mIoU. Under torchrun each rank scores its
shard and the counts are summed over ranks, so every rank returns the same numbers. Missing or unreadable
files are counted and logged, never silently scored as something else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.errors import InstantiationException

from wsl import dist, io
from wsl.metrics.segmentation import ConfusionAccumulator, SeedScoreAccumulator, miou
from wsl.stages import UserError, common

log = logging.getLogger(__name__)


def clean(value: Any) -> Any:
    """NaN/inf -> None and NumPy scalars -> Python numbers, recursively (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def by_name(values: Sequence[float], names: Sequence[str]) -> dict[str, float | None]:
    """``{class name: value}`` with NaN (class never seen) as None."""
    return {n: clean(float(v)) for n, v in zip(names, values, strict=True)}


def reduce_array(a: np.ndarray) -> np.ndarray:
    """Sum an integer array over all ranks (identity in a single process)."""
    if not dist.is_initialized():
        return a
    summed = dist.all_reduce_sum(a.reshape(-1).astype(np.float64).tolist())
    return np.rint(np.asarray(summed)).astype(a.dtype).reshape(a.shape)


def masks_or_none(cfg, split: str):
    """The split with ground-truth masks for scoring, or None (logged) when some or all masks are missing."""
    try:
        ds = common.build_dataset(cfg, split, with_masks=True)
    except (UserError, FileNotFoundError, InstantiationException) as e:
        if isinstance(e, InstantiationException) and not isinstance(e.__cause__, FileNotFoundError):
            raise  # Hydra wraps the loader's DatasetNotFoundError (a FileNotFoundError); others are bugs
        why = str(e.__cause__ or e).splitlines()[0]
        log.info("no ground-truth masks for every image of %s: not scored (%s)", split, why)
        return None
    return ds if getattr(ds, "has_masks", False) else None


def _read_pair(ds, i: int, folder: Path, counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(gt, prediction) of image ``i``, or None (counted as missing or failed, and logged)."""
    path = folder / f"{ds.ids[i]}.png"
    if not path.is_file():
        counts["missing"] += 1
        return None
    try:
        pred, gt = io.read_label_png(path), ds.load_mask(i)
    except (OSError, ValueError) as e:
        counts["failed"] += 1
        log.warning("cannot score %s: %s", path, e)
        return None
    if pred.shape != gt.shape:
        counts["failed"] += 1
        log.warning("cannot score %s: shape %s, ground truth %s", path, pred.shape, gt.shape)
        return None
    return gt, pred


def _log_gaps(what: str, folder: Path, counts: dict[str, int]) -> None:
    if counts["missing"] or counts["failed"]:
        log.warning(
            "%s in %s: %d images scored, %d missing, %d unreadable or mismatched (left out)",
            what,
            folder,
            counts["images"],
            counts["missing"],
            counts["failed"],
        )


def score_seeds(ds, indices: Sequence[int], folder: Path, names: Sequence[str]) -> dict[str, Any]:
    """Coverage, per-class precision and labelled-pixel mIoU of the seed PNGs in ``folder``.

    Args:
        ds: a dataset built ``with_masks=True``.
        indices: this rank's images.
        names: ``["background", *class_names]``.
    """
    acc = SeedScoreAccumulator(len(names))
    counts = {"images": 0, "missing": 0, "failed": 0}
    for i in indices:
        pair = _read_pair(ds, i, folder, counts)
        if pair is None:
            continue
        try:
            acc.update(*pair)
        except ValueError as e:
            counts["failed"] += 1
            log.warning("cannot score seeds of %s: %s", ds.ids[i], e)
            continue
        counts["images"] += 1
    acc.conf = reduce_array(acc.conf)
    totals = reduce_array(
        np.array(
            [
                acc.valid_pixels,
                acc.total_pixels,
                acc.labelled_pixels,
                counts["images"],
                counts["missing"],
                counts["failed"],
            ],
            dtype=np.int64,
        )
    )
    acc.valid_pixels, acc.total_pixels, acc.labelled_pixels = (int(v) for v in totals[:3])
    counts = dict(zip(("images", "missing", "failed"), (int(v) for v in totals[3:])))
    _log_gaps("seeds", folder, counts)
    s = acc.compute()
    return clean(
        {
            "coverage": s.coverage,  # labelled seed pixels / non-void GT pixels
            "labelled_fraction": s.labelled_fraction,  # labelled seed pixels / all pixels
            "mean_precision": s.mean_precision,
            "precision": by_name(s.precision, names),
            "miou": s.miou,  # over labelled, non-void pixels only
            "per_class_iou": by_name(s.per_class_iou, names),
            **counts,
        }
    )


def score_labels(ds, indices: Sequence[int], folder: Path, names: Sequence[str]) -> dict[str, Any]:
    """mIoU and per-class IoU of the complete label maps (pseudo-labels) in ``folder``."""
    acc = ConfusionAccumulator(len(names))
    counts = {"images": 0, "missing": 0, "failed": 0}
    for i in indices:
        pair = _read_pair(ds, i, folder, counts)
        if pair is None:
            continue
        try:
            acc.update(*pair)
        except ValueError as e:  # a 255 or an unknown class in a label map: never folded in
            counts["failed"] += 1
            log.warning("cannot score %s: %s", ds.ids[i], e)
            continue
        counts["images"] += 1
    conf = reduce_array(acc.conf)
    totals = reduce_array(np.array([counts["images"], counts["missing"], counts["failed"]], dtype=np.int64))
    counts = dict(zip(("images", "missing", "failed"), (int(v) for v in totals)))
    _log_gaps("label maps", folder, counts)
    m, iou = miou(conf)
    return clean({"miou": m, "per_class_iou": by_name(iou, names), **counts})
