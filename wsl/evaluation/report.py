"""Writing evaluation results: ``metrics.json`` (fractions), ``metrics.md`` and plots (percent).

Every file is written atomically through :mod:`wsl.io` / :mod:`wsl.viz`.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsl import io
from wsl.evaluation.results import LocalizationResult, SegmentationResult
from wsl.viz import plot_lines

__all__ = ["localization_markdown", "pct", "save_localization", "save_segmentation", "segmentation_markdown"]

_LOC_METRICS = (
    "top1_loc_err",
    "top5_loc_err",
    "gt_known_loc",
    "max_box_acc",
    "max_box_acc_v2",
    "corloc",
    "pointing_game",
    "pxap",
    "coco_ap",
    "coco_ap50",
)


def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (``'n/a'`` for None or NaN)."""
    return "n/a" if v is None or v != v else f"{100 * v:.{digits}f}"


def localization_markdown(r: LocalizationResult, title: str) -> str:
    """A table of the metrics (percent), the counts, then what was tuned on ground truth."""
    rows = [f"| {k} | {pct(getattr(r, k), 2)} |" for k in _LOC_METRICS if getattr(r, k) is not None]
    rows += [f"| MaxBoxAccV2 at IoU {d} | {pct(v, 2)} |" for d, v in r.max_box_acc_v2_per_iou.items()]
    counts = ("images", "pairs", "skipped_images", "missing", "failed")
    tuned = [f"- max_box_acc: CAM threshold chosen on GT: {r.max_box_acc_threshold:.3f}"]
    tuned += [
        "- max_box_acc_v2: CAM threshold chosen on GT per IoU threshold: "
        + ", ".join(f"{d}: {t:.3f}" for d, t in r.max_box_acc_v2_thresholds.items())
    ]
    if r.pxap is not None:
        tuned.append("- pxap: threshold-free (area under the pixel PR curve)")
    p = r.protocol
    per_class = [f"| {name} | {pct(v)} |" for name, v in r.corloc_per_class.items()]
    return (
        f"# {title}\n\n| metric | value (%) |\n| --- | ---: |\n"
        + "\n".join(rows)
        + "\n\n| count | value |\n| --- | ---: |\n"
        + "\n".join(f"| {k} | {getattr(r, k)} |" for k in counts)
        + f"\n\nFixed: Grad-CAM box at {p.loc_threshold:g} of the map maximum, IoU >= {p.iou_threshold:g}, "
        f"pointing tolerance {p.pointing_tolerance:g} px, CAM threshold step {p.box_acc_step:g}.\n\n"
        "Tuned on GT:\n"
        + "\n".join(tuned)
        + "\n\n## CorLoc per class (%)\n\n| class | CorLoc |\n| --- | ---: |\n"
        + "\n".join(per_class)
        + "\n"
    )


def save_localization(folder: str | os.PathLike, result: LocalizationResult, title: str) -> None:
    """Write ``metrics.json``, ``metrics.md``, ``box_acc_vs_threshold.png`` and, with PxAP,
    ``pixel_pr_curve.png`` into ``folder``."""
    folder = Path(folder)
    io.write_json(folder / "metrics.json", result.to_json())
    io.write_text(folder / "metrics.md", localization_markdown(result, title))
    t = result.thresholds
    curves = {f"V2 IoU {d}": (t, 100 * c) for d, c in result.box_acc_v2.items()}
    curves[f"V1 IoU {result.protocol.iou_threshold}"] = (t, 100 * result.box_acc_v1)
    plot_lines(folder / "box_acc_vs_threshold.png", curves, "CAM threshold", "BoxAcc (%)", f"BoxAcc, {title}")
    if result.pxap is not None and result.pr_recall is not None:
        plot_lines(
            folder / "pixel_pr_curve.png",
            {"pixels": (100 * result.pr_recall, 100 * result.pr_precision)},
            "recall (%)",
            "precision (%)",
            f"pixel precision-recall, PxAP {pct(result.pxap)} %, {title}",
        )


def segmentation_markdown(r: SegmentationResult) -> str:
    """A summary table and a per-class table (percent)."""
    rows = ["| what | mIoU (%) | notes |", "|---|---:|---|"]
    cols: list[tuple[str, dict]] = []
    c, s, lab = r.cams, r.seeds, r.labels
    if c is not None:
        rows += [
            f"| CAM masks, background {c.threshold:.2f} (fixed) | {pct(c.miou)} | {c.images} images, "
            f"{c.missing} missing, {c.failed} failed, {c.missing_maps} with a labelled class unmapped |",
            f"| CAM masks, background {c.best_threshold:.2f} | {pct(c.miou_tuned)} | "
            f"threshold tuned on {r.split} GT |",
        ]
        cols += [("CAM fixed", c.per_class_iou), ("CAM tuned", c.per_class_iou_tuned)]
    if s is not None:
        rows.append(
            f"| seeds (labelled pixels only) | {pct(s.miou)} | coverage {pct(s.coverage)} %, mean precision "
            f"{pct(s.mean_precision)} %, {s.images} images, {s.missing} missing, {s.failed} failed |"
        )
        cols.append(("seed precision", s.precision))
    if lab is not None:
        rows.append(
            f"| pseudo-labels | {pct(lab.miou)} | {lab.images} images, {lab.missing} missing, "
            f"{lab.failed} failed |"
        )
        cols.append(("pseudo-labels", lab.per_class_iou))
    names = list(cols[0][1]) if cols else []
    table = ["| class | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    table += [f"| {n} | " + " | ".join(pct(v.get(n)) for _, v in cols) + " |" for n in names]
    return (
        f"# Segmentation: {r.cam} on {r.split}\n\n" + "\n".join(rows) + "\n\n## Per class (IoU, "
        "seed precision), percent\n\n" + "\n".join(table) + "\n"
    )


def save_segmentation(folder: str | os.PathLike, result: SegmentationResult) -> None:
    """Write ``metrics.json``, ``metrics.md`` and (with CAM masks) ``miou_vs_threshold.png``."""
    folder = Path(folder)
    io.write_json(folder / "metrics.json", result.to_json())
    io.write_text(folder / "metrics.md", segmentation_markdown(result))
    c = result.cams
    if c is None:
        return
    t = c.sweep_thresholds
    series = {"CAM masks": (t, 100 * c.sweep_miou)}
    if result.labels is not None and result.labels.miou is not None:
        series["pseudo-labels"] = ([t[0], t[-1]], [100 * result.labels.miou] * 2)
    marks = {"best": (c.best_threshold, 100 * c.miou_tuned), "fixed": (c.threshold, 100 * c.miou)}
    title = f"CAM masks ({result.cam}, {result.split})"
    plot_lines(folder / "miou_vs_threshold.png", series, "background threshold", "mIoU (%)", title, marks)


def summary(result: LocalizationResult | SegmentationResult) -> str:
    """The headline figures of a result in one line (percent), for the stage's closing log line."""
    if isinstance(result, LocalizationResult):
        coco = "" if result.coco_ap50 is None else f", COCO AP50 {pct(result.coco_ap50)} %"
        return (f"GT-known {pct(result.gt_known_loc)} %, top-1 err {pct(result.top1_loc_err)} %, MaxBoxAccV2 "
                f"{pct(result.max_box_acc_v2)} %, CorLoc {pct(result.corloc)} %{coco}")  # fmt: skip
    c = result.cams
    tuned = "" if c is None else f"{pct(c.miou_tuned)} % at bg {c.best_threshold:.2f} (tuned on GT)"
    parts = [] if c is None else [f"CAM mIoU {pct(c.miou)} % at bg {c.threshold:.2f}, {tuned}"]
    parts += [f"{name} mIoU {pct(r.miou)} %" for name, r in (("seeds", result.seeds),
              ("pseudo-labels", result.labels)) if r is not None]  # fmt: skip
    return "; ".join(parts)
