"""The row of one method, built from the evaluators' typed results (no file parsing, no recomputation).

A row maps every :data:`~wsl.benchmark.columns.COLUMNS` key to a value (None: n/a) and may carry curves
``(x, y)`` for the plots: ``boxacc_curve`` (BoxAcc against the map threshold, from
:class:`~wsl.evaluation.LocalizationResult`), ``miou_curve`` (CAM mIoU against the background threshold,
from :class:`~wsl.evaluation.CamMaskResult`), ``deletion_curve`` / ``insertion_curve`` and
``sanity_curve`` (from the probes); ``<key>_low`` / ``<key>_high``, the bootstrap interval of a column
(:mod:`wsl.benchmark.bootstrap`); plus ``flagged`` (the sanity check) and ``status`` (what each step
did). Every score is a fraction, as the evaluators give it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from wsl.benchmark.columns import COLUMNS

Row = dict[str, Any]
Rows = dict[str, Row]
OK = ("ran", "reused")


def number(v: Any) -> float | None:
    """``v`` as a float, or None when it is absent, not a number or not finite."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def curve(x: Sequence[float], y: Sequence[float | None]) -> tuple[list[float], list[float | None]]:
    """A plottable, JSON-safe curve: floats, with None where ``y`` is absent or not finite."""
    return [float(v) for v in x], [number(v) for v in y]


def json_safe(value: Any) -> Any:
    """``value`` for strict JSON: NaN / inf -> None, tuples and arrays -> lists, NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def empty_row() -> Row:
    return {c.key: None for c in COLUMNS}


def _at_iou(curves: Mapping[Any, Sequence[float]], iou: float) -> Sequence[float] | None:
    """The curve of ``curves`` (keyed by IoU, as floats or strings) at ``iou``, or None."""
    for k, v in curves.items():
        if number(k) is not None and abs(float(k) - iou) < 1e-9:
            return v
    return None


def localization_values(res: Any) -> Row:
    """Table values and the BoxAcc curve of a :class:`~wsl.evaluation.LocalizationResult`.

    The curve is BoxAcc with every contour boxed (V2) at the protocol's IoU threshold, or the V1 curve
    (largest contour, same IoU) when V2 was not swept at that IoU.
    """
    iou = float(res.protocol.iou_threshold)
    y = _at_iou(res.box_acc_v2 or {}, iou)
    every_contour = y is not None
    if y is None:
        y = res.box_acc_v1
    out: Row = {
        "gt_known_loc": number(res.gt_known_loc),
        "top1_loc_err": number(res.top1_loc_err),
        "maxboxacc_v2": number(res.max_box_acc_v2),
        "corloc": number(res.corloc),
        "pointing_game": number(res.pointing_game),
        "pxap": number(res.pxap),
    }
    if y is not None and len(res.thresholds):
        out["boxacc_curve"] = curve(res.thresholds, y)
        out["boxacc_iou"] = iou
        out["boxacc_every_contour"] = every_contour
    return out


def segmentation_values(res: Any) -> Row:
    """Table values and the mIoU-against-threshold curve of a :class:`~wsl.evaluation.CamMaskResult`."""
    out: Row = {"miou": number(res.miou), "miou_tuned": number(res.miou_tuned)}
    if res.sweep_thresholds is not None and len(res.sweep_thresholds) and res.sweep_miou is not None:
        out["miou_curve"] = curve(res.sweep_thresholds, res.sweep_miou)
    return out


def quality_row(
    localization: Any | None = None, segmentation: Any | None = None, intervals: Mapping | None = None
) -> Row:
    """A row with the quality columns filled from the typed results given (the others n/a) and their
    bootstrap ``intervals`` (``<key>_low`` / ``<key>_high``, :attr:`wsl.benchmark.ChainResult.intervals`)."""
    row = empty_row()
    if localization is not None:
        row.update(localization_values(localization))
    if segmentation is not None:
        row.update(segmentation_values(segmentation))
    row.update(intervals or {})
    return row


def table(rows: Rows) -> dict[str, dict[str, Any]]:
    """``{method: {column: value, "flagged": bool}}``: what the manifest and the stage return."""
    return {
        m: {c.key: r.get(c.key) for c in COLUMNS} | {"flagged": bool(r.get("flagged"))}
        for m, r in rows.items()
    }


def failed_methods(rows: Rows) -> list[str]:
    """The methods for which some step or probe did not run or reuse its output."""
    return [
        m for m, r in rows.items() if not all(str(v).startswith(OK) for v in r.get("status", {}).values())
    ]
