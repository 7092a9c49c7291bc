"""The human-readable side of the segmentation evaluation: ``metrics.md`` and ``miou_vs_threshold.png``."""

from __future__ import annotations

from pathlib import Path

from wsl.viz import plot_lines


def pct(v: float | None) -> str:
    """A fraction as a percentage with one decimal ('n/a' for None)."""
    return "n/a" if v is None else f"{100 * v:.1f}"


def summary(name: str, section: dict | None) -> str:
    """A log-line fragment for the seeds or pseudo-labels section ('' when absent)."""
    if not section:
        return ""
    extra = f", coverage {pct(section['coverage'])}" if "coverage" in section else ""
    return f"; {name} mIoU {pct(section['miou'])}{extra}"


def markdown(m: dict, names: list[str]) -> str:
    """A summary table and a per-class IoU table (percent)."""
    fixed, best = f"{m['threshold']:.2f}", f"{m['best_threshold']:.2f}"
    rows = [
        "| what | mIoU | notes |",
        "|---|---:|---|",
        f"| CAM masks, background {fixed} (fixed) | {pct(m['miou'])} | {m['cams']['images']} images |",
        f"| CAM masks, background {best} | {pct(m['miou_tuned'])} | threshold tuned on {m['split']} GT |",
    ]
    if m["seeds"]:
        s = m["seeds"]
        rows.append(
            f"| seeds (labelled pixels only) | {pct(s['miou'])} | coverage {pct(s['coverage'])}, "
            f"mean precision {pct(s['mean_precision'])}, {s['images']} images |"
        )
    if m["labels"]:
        rows.append(f"| pseudo-labels | {pct(m['labels']['miou'])} | {m['labels']['images']} images |")
    cols = [("CAM fixed", m["per_class_iou"]), ("CAM tuned", m["per_class_iou_tuned"])]
    cols += [("seed precision", m["seeds"]["precision"])] if m["seeds"] else []
    cols += [("pseudo-labels", m["labels"]["per_class_iou"])] if m["labels"] else []
    table = ["| class | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    table += [f"| {n} | " + " | ".join(pct(v[n]) for _, v in cols) + " |" for n in names]
    return (
        f"# Segmentation: {m['cam']} on {m['split']}\n\n" + "\n".join(rows) + "\n\n## Per class (IoU, "
        "seed precision), percent\n\n" + "\n".join(table) + "\n"
    )


def plot_sweep(path: Path, m: dict) -> None:
    """mIoU of the CAM masks against the background threshold (+ the pseudo-labels' mIoU as a line)."""
    t, y = m["sweep"]["thresholds"], [100 * v if v is not None else float("nan") for v in m["sweep"]["miou"]]
    series = {"CAM masks": (t, y)}
    if m["labels"] and m["labels"]["miou"] is not None:
        series["pseudo-labels"] = ([t[0], t[-1]], [100 * m["labels"]["miou"]] * 2)
    marks = {"best": (m["best_threshold"], 100 * m["miou_tuned"]), "fixed": (m["threshold"], 100 * m["miou"])}
    plot_lines(
        path, series, "background threshold", "mIoU (%)", f"CAM masks ({m['cam']}, {m['split']})", marks
    )
