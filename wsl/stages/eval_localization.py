"""The localization task of stage=eval: every stored map against the GT boxes of its class.

Per (image, labelled class) as ``shared/reference/evaluation.md`` defines for multi-label images:
Grad-CAM protocol (15 % of the max, largest segment) top-1 / top-5 / GT-known localization and CorLoc,
pointing game, wsolevaluation's MaxBoxAcc (V1) and MaxBoxAccV2 and, where masks exist, PxAP; and COCO
box AP of ``boxes.json`` (stage=boxes) through ``pycocotools.cocoeval.COCOeval`` when that file exists.
Runs on rank 0 (it is cheap next to making the maps).
"""

from __future__ import annotations

import contextlib
import io as _io
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from wsl import io
from wsl.metrics import MaxBoxAccumulator, PxAPAccumulator
from wsl.metrics.localization import LocalizationAccumulator
from wsl.metrics.wsol import default_thresholds
from wsl.stages import common
from wsl.stages.boxes import boxes_dir
from wsl.stages.camfiles import load_full, require_cams
from wsl.viz import plot_lines

log = logging.getLogger(__name__)

V2_IOUS = (0.3, 0.5, 0.7)


def coco_box_ap(ds, results_path: Path, image_ids: list[int]) -> dict[str, float]:
    """COCO AP and AP50 of a results file, over ``image_ids``; empty results score 0."""
    from pycocotools.cocoeval import COCOeval

    results = io.read_json(results_path)
    if not results:
        return {"coco_ap": 0.0, "coco_ap50": 0.0}
    gt = ds.coco_gt()
    with contextlib.redirect_stdout(_io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"coco_ap": 100.0 * float(ev.stats[0]), "coco_ap50": 100.0 * float(ev.stats[1])}


def evaluate_localization(cfg: DictConfig, split: str, out: Path, ds=None) -> dict:
    """Score the run's maps of ``split`` against its boxes; ``ds`` is the split's dataset if already built."""
    st = cfg.stage
    cams = require_cams(cfg, split)
    ds = common.build_dataset(cfg, split, with_boxes=True) if ds is None else ds
    has_masks = bool(getattr(ds, "has_masks", False))
    thresholds = default_thresholds(st.box_acc_step)
    loc = LocalizationAccumulator(st.loc_threshold, st.iou_threshold, topk=5, tolerance=st.pointing_tolerance)
    v1 = MaxBoxAccumulator(thresholds, (st.iou_threshold,), multi_contour=False)
    v2 = MaxBoxAccumulator(thresholds, V2_IOUS, multi_contour=True)
    px = PxAPAccumulator(thresholds) if has_masks else None
    missing, scored_ids = 0, []
    for i in common.progress(range(len(ds)), f"eval localization {cfg.cam.name} {split}"):
        path = cams / f"{ds.ids[i]}.npz"
        if not path.is_file():
            missing += 1
            continue
        rec = load_full(path)
        maps = dict(zip(rec["classes"].tolist(), rec["full"]))
        gt = ds.load_boxes(i)
        labels = np.flatnonzero(ds.labels()[i] > 0)
        absent = [int(c) for c in labels if c not in maps]
        if absent:
            raise ValueError(f"{path} has no map for labelled classes {absent}: re-run stage=cams")
        loc.update(maps, rec["logits"], gt["boxes"], gt["labels"], gt["difficult"])
        scored_ids.append(ds.coco_image_id(i))
        mask = ds.load_mask(i) if px is not None else None
        for c in labels.tolist():
            of_c = gt["labels"] == c
            if of_c.any() and not gt["difficult"][of_c].all():
                v1.update(maps[c], gt["boxes"][of_c])
                v2.update(maps[c], gt["boxes"][of_c])
            if mask is not None:
                px.update(maps[c], np.where(mask == 255, 255, (mask == c + 1).astype(np.uint8)))
    if missing:
        log.warning("%d images of %s have no CAM file in %s: left out", missing, split, cams)
    r_loc, r_v1, r_v2 = loc.compute(), v1.compute(), v2.compute()
    names = list(ds.class_names)
    metrics = {
        "top1_loc_err": r_loc["top1_loc_err"],
        "top5_loc_err": r_loc["top5_loc_err"],
        "gt_known_loc": r_loc["gt_known_loc"],
        "max_box_acc": r_v1["max_box_acc"],
        "max_box_acc_v2": r_v2["max_box_acc"],
        "max_box_acc_v2_per_iou": {str(d): b["value"] for d, b in r_v2["best"].items()},
        "corloc": r_loc["corloc"],
        "corloc_per_class": {names[c]: v for c, v in r_loc["corloc_per_class"].items()},
        "pointing_game": r_loc["pointing_game"],
        "images": r_loc["images"],
        "pairs": r_loc["pairs"],
        "skipped_images": r_loc["skipped_images"] + missing,
        "fixed_thresholds": {
            "gradcam_box_fraction": st.loc_threshold,
            "iou": st.iou_threshold,
            "pointing_tolerance_px": st.pointing_tolerance,
        },
        "tuned_on_gt": {
            "max_box_acc": f"CAM threshold chosen on GT: {r_v1['best'][st.iou_threshold]['threshold']:.3f}",
            "max_box_acc_v2": "CAM threshold chosen on GT per IoU threshold: "
            + ", ".join(f"{d}: {b['threshold']:.3f}" for d, b in r_v2["best"].items()),
        },
    }
    curves = {f"V2 IoU {d}": (thresholds, r_v2["box_acc"][d]) for d in V2_IOUS}
    curves[f"V1 IoU {st.iou_threshold}"] = (thresholds, r_v1["box_acc"][st.iou_threshold])
    plot_lines(
        out / "box_acc_vs_threshold.png",
        curves,
        "CAM threshold",
        "BoxAcc (%)",
        f"BoxAcc, {cfg.cam.name} on {split}",
    )
    if px is not None:
        r_px = px.compute()
        metrics["pxap"] = r_px["pxap"]
        metrics["tuned_on_gt"]["pxap"] = "threshold-free (area under the pixel PR curve)"
        plot_lines(
            out / "pixel_pr_curve.png",
            {cfg.cam.name: (r_px["recall"], r_px["precision"])},
            "recall",
            "precision",
            f"pixel precision-recall, PxAP {r_px['pxap']:.1f}",
        )
    results = boxes_dir(cfg, split) / "boxes.json"
    if results.is_file():
        metrics.update(coco_box_ap(ds, results, scored_ids))
    else:
        log.info("no %s: COCO box AP left out (run stage=boxes to get it)", results)
    common.write_metrics(out, metrics)
    io.write_text(out / "metrics.md", metrics_table(metrics, f"Localization, {cfg.cam.name} on {split}"))
    log.info(
        "localization %s/%s: GT-known %.1f, top-1 err %.1f, MaxBoxAccV2 %.1f, CorLoc %.1f%s",
        cfg.cam.name,
        split,
        metrics["gt_known_loc"],
        metrics["top1_loc_err"],
        metrics["max_box_acc_v2"],
        metrics["corloc"],
        f", COCO AP50 {metrics['coco_ap50']:.1f}" if "coco_ap50" in metrics else "",
    )
    return metrics


def metrics_table(metrics: dict, title: str) -> str:
    """A markdown table of the scalar metrics, then what was tuned on ground truth."""
    rows = [f"| {k} | {v:.2f} |" for k, v in metrics.items() if isinstance(v, float)]
    rows += [f"| {k} | {v} |" for k, v in metrics.items() if isinstance(v, int) and not isinstance(v, bool)]
    tuned = "\n".join(f"- {k}: {v}" for k, v in metrics.get("tuned_on_gt", {}).items())
    return (
        f"# {title}\n\n| metric | value |\n| --- | --- |\n" + "\n".join(rows) + f"\n\nTuned on GT:\n{tuned}\n"
    )
