"""The columns of the benchmark table and the quality scores read from the evaluators' files.

Localization and segmentation scores come from ``eval/<cam>/<split>/<task>/metrics.json`` (written by
stage=eval). Keys are looked up by name, top level first, then anywhere in the nested dicts, so a
re-arranged evaluator output still reads; a missing key gives ``None`` (shown as n/a). One pass over the
stored maps (:func:`map_scores`) gives what the table also needs and the evaluators may not store: the
BoxAcc-against-threshold curve, MaxBoxAccV2 and PxAP (wsolevaluation's protocols, via ``wsl.metrics``);
the evaluators' values win where both exist.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsl import io
from wsl.metrics import MaxBoxAccumulator, PxAPAccumulator
from wsl.stages.camfiles import load_full

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """One column of the table: values are stored in the unit shown (percent where ``unit == '%'``)."""

    key: str
    header: str
    better: Literal["max", "min"] | None
    digits: int
    help: str
    unit: str = ""


COLUMNS: tuple[Column, ...] = (
    Column(
        "gt_known_loc",
        "GT-known loc",
        "max",
        1,
        "box of the true class's map (15 % of its maximum, "
        "largest segment) has IoU >= 0.5 with a GT box of that class, over (image, labelled class)",
        "%",
    ),
    Column(
        "top1_loc_err",
        "top-1 loc err",
        "min",
        1,
        "the top-scoring class is wrong or its box misses (IoU < 0.5), over images (Grad-CAM protocol)",
        "%",
    ),
    Column(
        "maxboxacc_v2",
        "MaxBoxAccV2",
        "max",
        1,
        "box accuracy at the best map threshold, every "
        "contour boxed, mean over IoU 0.3 / 0.5 / 0.7 (Choe et al. 2020)",
        "%",
    ),
    Column(
        "corloc",
        "CorLoc",
        "max",
        1,
        "per class, the share of its images whose box has IoU >= 0.5; mean over classes",
        "%",
    ),
    Column(
        "pointing_game",
        "pointing",
        "max",
        1,
        "the map's maximum lies within 15 px of a GT box of the class (Zhang et al. 2016)",
        "%",
    ),
    Column(
        "miou",
        "mIoU fixed",
        "max",
        1,
        "CAM masks: background plane at the fixed threshold (0.15), "
        "argmax over the labelled classes' maps, VOC mIoU",
        "%",
    ),
    Column(
        "miou_tuned",
        "mIoU tuned",
        "max",
        1,
        "the same at the best background threshold, chosen on "
        "the ground truth of this split (optimistic, as papers do)",
        "%",
    ),
    Column(
        "pxap",
        "PxAP",
        "max",
        1,
        "area under the pixel precision-recall curve of the map against the "
        "class's mask (other classes are negatives)",
        "%",
    ),
    Column(
        "deletion_auc",
        "deletion AUC",
        "min",
        3,
        "class probability while the most salient pixels are "
        "removed (set to the mean colour), area under the curve (RISE)",
    ),
    Column(
        "insertion_auc",
        "insertion AUC",
        "max",
        3,
        "class probability while the most salient pixels "
        "are pasted onto a blurred copy, area under the curve (RISE)",
    ),
    Column(
        "average_drop",
        "Average Drop",
        "min",
        1,
        "mean relative drop of the class probability when the image is multiplied by its map (Grad-CAM++)",
        "%",
    ),
    Column(
        "increase_in_confidence",
        "Increase in Conf.",
        "max",
        1,
        "share of (image, class) pairs whose "
        "probability rises on the image multiplied by its map (Grad-CAM++)",
        "%",
    ),
    Column(
        "sanity_spearman",
        "sanity ρ",
        None,
        2,
        "Spearman rank correlation of |map| between the trained model and the model with its top layers "
        "randomised (a pass / fail check, no best: near 0 or negative passes); above the flag threshold "
        "the maps do not depend on what the model learned (Adebayo et al. 2018)",
    ),
    Column(
        "images_per_s",
        "images/s",
        "max",
        1,
        "images per second: one forward pass + the method, single scale, no flip, maps of the labelled "
        "classes, one image at a time (median over the images)",
    ),
    Column(
        "ms_per_map", "ms/map", "min", 1, "milliseconds per (image, class) map, same measurement (median)"
    ),
    Column(
        "peak_mb",
        "peak MB",
        "min",
        1,
        "peak memory added while computing the maps: the CUDA "
        "allocator's peak on a GPU, the process's resident set size sampled every 2 ms on a CPU",
    ),
)

# The column groups of the HTML table, in order.
GROUPS: dict[str, tuple[str, ...]] = {
    "localization": ("gt_known_loc", "top1_loc_err", "maxboxacc_v2", "corloc", "pointing_game"),
    "segmentation": ("miou", "miou_tuned", "pxap"),
    "faithfulness": ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"),
    "sanity": ("sanity_spearman",),
    "cost": ("images_per_s", "ms_per_map", "peak_mb"),
}

# Names under which the evaluators may store each score (first match wins).
KEYS: dict[str, tuple[str, ...]] = {
    "gt_known_loc": ("gt_known_loc", "gt_known", "gt_known_loc_acc"),
    "top1_loc_err": ("top1_loc_err", "top1_loc_error", "top1_error"),
    "maxboxacc_v2": ("maxboxacc_v2", "max_box_acc_v2", "v2.max_box_acc", "maxboxacc.v2", "max_box_acc.v2"),
    "corloc": ("corloc",),
    "pointing_game": ("pointing_game", "pointing"),
    "pxap": ("pxap",),
    "miou": ("miou",),
    "miou_tuned": ("miou_tuned",),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        return None
    return float(v)


def lookup(metrics: dict | None, names: tuple[str, ...]) -> float | None:
    """The first numeric value found under ``names``: dotted paths first, then any nested key whose
    name matches (case, ``_`` and ``-`` ignored), shallowest first. ``None`` when there is none."""
    if not isinstance(metrics, dict):
        return None
    for name in names:
        node: Any = metrics
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if _number(node) is not None:
            return _number(node)
    wanted = {_norm(n) for n in names if "." not in n}
    level = [metrics]
    while level:
        for d in level:
            for k, v in d.items():
                if _norm(str(k)) in wanted and _number(v) is not None:
                    return _number(v)
        level = [v for d in level for v in d.values() if isinstance(v, dict)]
    return None


def read_eval(run: Path, method: str, split: str, task: str) -> dict | None:
    path = run / "eval" / method / split / task / "metrics.json"
    return io.read_json(path) if path.is_file() else None


def eval_scores(run: Path, method: str, split: str) -> dict[str, Any]:
    """Table values (percent) from the evaluators' files, and the mIoU-against-threshold curve."""
    loc, seg = read_eval(run, method, split, "localization"), read_eval(run, method, split, "segmentation")
    out: dict[str, Any] = {}
    for key, names in KEYS.items():
        source = seg if key in ("miou", "miou_tuned") else loc
        value = lookup(source, names)
        if key == "pxap" and value is None:
            value = lookup(seg, names)
        out[key] = None if value is None else value * (100.0 if key.startswith("miou") else 1.0)
    sweep = (seg or {}).get("sweep") or {}
    if sweep.get("thresholds") and sweep.get("miou"):
        y = [np.nan if v is None else 100.0 * v for v in sweep["miou"]]
        out["miou_curve"] = (list(sweep["thresholds"]), y)
    return out


def map_scores(ds, folder: Path, indices: list[int], step: float = 0.01) -> dict[str, Any]:
    """MaxBoxAccV2, the BoxAcc curve at IoU 0.5 and PxAP of the stored maps of the labelled classes."""
    thresholds = np.arange(0, 1, step)
    boxes = MaxBoxAccumulator(thresholds, (0.3, 0.5, 0.7), multi_contour=True) if ds.has_boxes else None
    pix = PxAPAccumulator(thresholds) if ds.has_masks else None
    labels = ds.labels()
    for i in indices:
        path = folder / f"{ds.ids[i]}.npz"
        if not path.is_file():
            continue
        rec = load_full(path)
        gt_boxes = ds.load_boxes(i) if boxes is not None else None
        mask = ds.load_mask(i) if pix is not None else None
        for k, c in enumerate(rec["classes"].tolist()):
            if labels[i][c] <= 0:
                continue
            if gt_boxes is not None and (gt_boxes["labels"] == c).any():
                boxes.update(rec["full"][k], gt_boxes["boxes"][gt_boxes["labels"] == c])
            if mask is not None and mask.shape == rec["full"].shape[1:]:
                pix.update(rec["full"][k], np.where(mask == 255, 255, mask == c + 1).astype(np.uint8))
    out: dict[str, Any] = {"maxboxacc_v2": None, "pxap": None}
    if boxes is not None and boxes.count:
        res = boxes.compute()
        out["maxboxacc_v2"] = res["max_box_acc"]
        out["boxacc_curve"] = (thresholds.tolist(), np.asarray(res["box_acc"][0.5]).tolist())
    if pix is not None and pix.pos.sum():
        out["pxap"] = pix.compute()["pxap"]
    return out
