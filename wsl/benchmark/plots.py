"""The plots of the benchmark report (``plots/*.png``), drawn with :mod:`wsl.viz`.

Every method keeps its look (:func:`wsl.benchmark.styles.style`) in every plot. Methods whose curves are
identical (to :data:`~wsl.benchmark.styles.TOLERANCE`) are drawn once, in the look of the first of them,
and named together in the legend ("cam = gradcam = hirescam"). The quality-against-cost panels show
each value's bootstrap interval as a vertical bar. ``rows`` is as in :mod:`wsl.benchmark.rows`
(fractions); the plots show percentages where the column says so.
"""

from __future__ import annotations

from pathlib import Path

from wsl.benchmark.columns import BY_KEY
from wsl.benchmark.rows import Rows
from wsl.benchmark.styles import group_label, identical_groups, style
from wsl.viz import plot_many_lines, plot_tradeoff

TRADEOFF = ("maxboxacc_v2", "miou_tuned", "insertion_auc")


def _scaled(xy: tuple[list[float], list[float | None]], scale: float) -> tuple[list[float], list[float]]:
    x, y = xy
    return list(x), [float("nan") if v is None else scale * v for v in y]


def grouped(curves: dict[str, tuple], scale: float = 1.0) -> tuple[dict[str, tuple], dict[str, dict]]:
    """``{method: curve}`` (stored units) -> one curve per group of identical curves, multiplied by
    ``scale``, keyed by :func:`group_label`, with the style of the group's first method."""
    series, styles = {}, {}
    for group in identical_groups(curves):
        label = group_label(group)
        series[label], styles[label] = _scaled(curves[group[0]], scale), style(group[0])
    return series, styles


def _tradeoff(out: Path, rows: Rows) -> list[tuple[str, str]]:
    panels, errors = {}, {}
    for key in TRADEOFF:
        col = BY_KEY[key]
        name = col.title().rstrip(" ↑↓")
        usable = {m: r for m, r in rows.items() if r.get("ms_per_map") is not None and r.get(key) is not None}
        if usable:
            panels[name] = {m: (r["ms_per_map"], col.scale * r[key]) for m, r in usable.items()}
            errors[name] = {
                m: tuple(col.scale * v for v in col.bounds(r)) for m, r in usable.items() if col.bounds(r)
            }
    if not panels:
        return []
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    plot_tradeoff(out / "plots/quality_vs_cost.png", panels, "ms per map (log)", "quality against cost",
                  flagged=flagged, styles={m: style(m) for m in rows}, errors=errors)  # fmt: skip
    caption = ("Quality against cost: up and to the left is better. Bars: bootstrap 95 % intervals over "
               "images. Hollow markers: flagged by the sanity check.")  # fmt: skip
    return [("plots/quality_vs_cost.png", caption)]


def write_plots(out: Path, rows: Rows, blocks: list[str]) -> list[tuple[str, str]]:
    """The plots under ``out/plots``; returns ``(relative path, caption)`` of those drawn, the wide
    quality-against-cost figure first."""
    drawn = _tradeoff(Path(out), rows)
    iou = next((r["boxacc_iou"] for r in rows.values() if r.get("boxacc_iou") is not None), 0.5)
    contours = "every contour boxed" if all(r.get("boxacc_every_contour", True) for r in rows.values()) else (
        "every contour boxed, or the largest where V2 was not swept at this IoU")  # fmt: skip
    curves = (
        ("boxacc_curve", "boxacc_vs_threshold", 100.0, "map threshold (fraction of the max)",
         f"BoxAcc at IoU {iou:g} (%)", f"BoxAcc against the map threshold ({contours})"),
        ("miou_curve", "miou_vs_threshold", 100.0, "background threshold", "CAM mIoU (%)",
         "CAM mask mIoU against the background threshold"),
        ("deletion_curve", "deletion_curves", 1.0, "fraction of pixels deleted", "class probability",
         "Deletion: the probability should fall fast (lower area is better)"),
        ("insertion_curve", "insertion_curves", 1.0, "fraction of pixels inserted", "class probability",
         "Insertion: the probability should rise fast (higher area is better)"),
    )  # fmt: skip
    note = " Methods with identical curves are drawn once and named together."
    for key, name, scale, xlabel, ylabel, title in curves:
        series, styles = grouped({m: r[key] for m, r in rows.items() if r.get(key)}, scale)
        if series:
            plot_many_lines(out / f"plots/{name}.png", series, xlabel, ylabel, title, styles=styles)
            drawn.append((f"plots/{name}.png", title + "." + note))
    series, styles = grouped({
        m: (list(range(len(r["sanity_curve"]) + 1)), [1.0, *r["sanity_curve"]])
        for m, r in rows.items()
        if r.get("sanity_curve")
    })  # fmt: skip
    if series:
        plot_many_lines(out / "plots/sanity.png", series, "randomised, cumulatively from the top",
                        "Spearman of |map| with the trained model", "Cascading randomisation",
                        xticklabels=["trained", *blocks], styles=styles)  # fmt: skip
        drawn.append(("plots/sanity.png", "Cascading randomisation: a map that depends on the model falls "
                      "towards 0; one that stays high ignores the weights." + note))  # fmt: skip
    return drawn
