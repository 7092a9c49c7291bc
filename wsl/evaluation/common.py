"""What every evaluator of ``wsl.evaluation`` shares: the read errors it counts, JSON cleaning, the maps of
an image's labelled classes, and the dataset-bound accumulator base.

Evaluators follow the contract of ``wsl.metrics``: ``update`` one image, ``merge(other) -> self``
(``wsl.dist.merge_all`` across processes), ``compute`` -> a frozen dataclass. They hold the dataset they
score (``ds``) but never pickle it: a copy gathered from another process carries only counts, and the
caller gives the dataset back (:func:`reduced`).
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from wsl import dist
from wsl.cam.stored import upsample_stored
from wsl.errors import Failures
from wsl.progress import track

log = logging.getLogger(__name__)

UNITS = "fractions in [0, 1]"

# What reading a stored file (or the ground truth next to it) can raise: the image is counted as failed.
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, zipfile.BadZipFile)

E = TypeVar("E", bound="DatasetEvaluator")


class MissingMapError(ValueError):
    """A CAM file has no map for a class of the image's label: the maps were made for another label set."""


def clean(value: Any) -> Any:
    """NaN/inf -> None, NumPy -> Python (arrays -> lists), tuples -> lists, recursively (strict JSON)."""
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


def or_none(value: float) -> float | None:
    """``float(value)``, or None when it is NaN (a metric with nothing to average)."""
    value = float(value)
    return None if math.isnan(value) else value


def or_nan(value: float | None) -> float:
    """The inverse of :func:`or_none` for arrays and fields read back from JSON."""
    return float("nan") if value is None else float(value)


def by_name(values: Sequence[float], names: Sequence[str]) -> dict[str, float | None]:
    """``{class name: value}`` with NaN (class never seen) as None."""
    return {n: or_none(v) for n, v in zip(names, values, strict=True)}


def cams_of_labelled(
    rec: dict[str, np.ndarray], labels_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The maps of an image's labelled classes at image size.

    Args:
        rec: a CAM record (:func:`wsl.io.load_cams`, or :func:`wsl.cam.stored.load_full` whose ``full``
            maps are used when present).
        labels_row: ``(C,)`` multi-hot image-level label.

    Returns:
        ``(classes, maps, absent)``: int64 ``(K,)`` 0-based labelled classes that have a map, in the
        file's order (which decides ties in an argmax); float32 ``(K, H, W)`` their maps at image size
        (max-normalised, as :func:`wsl.cam.stored.upsample_stored`); the labelled classes with no map.
    """
    present = np.flatnonzero(np.asarray(labels_row) > 0)
    classes = np.asarray(rec["classes"], dtype=np.int64).reshape(-1)
    keep = np.isin(classes, present)
    if "full" in rec:
        maps = np.asarray(rec["full"])[keep]
    else:
        maps = upsample_stored(rec["maps"][keep], tuple(int(v) for v in rec["image_size"]))
    absent = sorted(set(present.tolist()) - set(classes.tolist()))
    return classes[keep], maps, absent


class DatasetEvaluator:
    """Base of the evaluators: the dataset ``ds`` (not pickled), the ``missing`` / ``failed`` counts and
    the ``failures`` (``{image id: reason}``) behind ``failed``."""

    ds: Any
    missing: int
    failed: int

    @property
    def failures(self) -> Failures:
        if "_failures" not in self.__dict__:
            self._failures = Failures()
        return self._failures

    def add_missing(self, n: int = 1) -> None:
        """Count ``n`` images whose file does not exist (never scored)."""
        self.missing += int(n)

    def add_failed(self, image_id: str, reason: object) -> None:
        """Count image ``image_id``, whose file is unreadable or inconsistent with the ground truth (or
        whose ground truth is unusable), and log ``reason`` once."""
        if image_id not in self.failures:
            self.failed += 1
        self.failures.add(image_id, reason)

    def _merge_counts(self, other: DatasetEvaluator, *names: str) -> None:
        for name in ("missing", "failed", *names):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.merge(other.failures)
        if self.ds is None:
            self.ds = other.ds

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["ds"] = None  # the dataset stays in its process: only counts travel
        return state


def reduced(acc: E, reduce: Callable[[E], E] | None, ds: Any) -> E:
    """``reduce(acc)`` (e.g. ``wsl.dist.merge_all``; None = identity) with the dataset given back."""
    out = acc if reduce is None else reduce(acc)
    if out.ds is None:
        out.ds = ds
    return out


def log_gaps(what: str, folder: Any, images: int, missing: int, failed: int) -> None:
    """One warning (main process only) when some files were missing or could not be scored."""
    if (missing or failed) and dist.is_main():
        log.warning(
            "%s in %s: %d images scored, %d missing, %d unreadable or inconsistent (left out)",
            what,
            folder,
            images,
            missing,
            failed,
        )


def class_names(ds) -> list[str]:
    """``["background", *ds.class_names]``: the names of the mask values 0..C."""
    return ["background", *ds.class_names]


def require_masks(ds) -> None:
    """Raise ``ValueError`` unless ``ds`` has ground-truth masks."""
    if not getattr(ds, "has_masks", False):
        raise ValueError(f"{ds!r} has no ground-truth masks: nothing to score")


def score_files(
    acc: DatasetEvaluator,
    ds: Any,
    folder: str | os.PathLike,
    suffix: str,
    read: Callable[[Path], Any],
    indices: Iterable[int] | None,
    desc: str,
) -> None:
    """``acc.update(i, read(folder/<id><suffix>))`` for the images ``indices`` (default all) of ``ds``;
    absent files counted as missing, unreadable or inconsistent ones as failed (logged once, with the
    reason, in ``acc.failures``); a :class:`MissingMapError` stops the scoring."""
    folder = Path(folder)
    for i in track(list(range(len(ds))) if indices is None else list(indices), desc):
        path = folder / f"{ds.ids[i]}{suffix}"
        if not path.is_file():
            acc.add_missing()
            continue
        try:
            acc.update(i, read(path))  # type: ignore[attr-defined]
        except MissingMapError:  # the maps were made for other labels: the whole folder is wrong
            raise
        except READ_ERRORS as e:
            acc.add_failed(ds.ids[i], e if str(path) in str(e) else f"{path}: {e}")
