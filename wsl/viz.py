"""Plots written by the stages (training curves, threshold curves, trade-offs). Files only, no display.

Every figure is laid out so that no two texts overlap (:func:`text_overlaps` measures it with the
renderer): point labels are placed by :func:`place_labels`, titles are given their own room. Series may
carry a style (``{"color", "marker", "linestyle"}``, e.g. :func:`wsl.benchmark.styles.style`) so that one
thing looks the same in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from wsl.io import atomic_path  # noqa: E402

DPI = 110
Style = Mapping[str, str]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
# How the history keys of stage=train and stage=sec are shown: stage=train's "loss" is the training loss and
# its scores are on the validation split; "train_<k>" / "val_<k>" name a side explicitly.
LABELS = {"map": "mAP", "f1_macro": "F1 macro", "f1_micro": "F1 micro", "loss": "loss",
          "seed": "seeding loss", "expand": "expansion loss", "constrain": "constrain-to-boundary loss",
          "total": "total loss"}  # fmt: skip
SIDES = {"loss": "train", "map": "val", "f1_macro": "val", "f1_micro": "val", "seed": "train",
         "expand": "train", "constrain": "train", "total": "train"}  # fmt: skip


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _drawn_tick_labels(fig) -> set[int]:
    """ids of the tick labels matplotlib does NOT draw (their tick lies outside the view)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(abs(lo), abs(hi), 1.0)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if tick.get_loc() is None or not lo - eps <= tick.get_loc() <= hi + eps:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return hidden


def text_overlaps(fig, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of drawn, non-empty texts of ``fig`` (titles, axis and tick labels, legends, annotations)
    whose bounding boxes (``Text.get_window_extent`` with the canvas' renderer) overlap by more than
    ``tolerance`` pixels both ways."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = _drawn_tick_labels(fig)
    boxes = [  # Text's own extent: an annotation's leader line is not text
        (t.get_text(), Text.get_window_extent(t, renderer))
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden
    ]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance and h > tolerance:
                out.append((a, b))
    return out


def _hit(box: Box, others: list[Box]) -> float:
    """Area of ``box`` (x0, y0, x1, y1) covered by ``others``."""
    x0, y0, x1, y1 = box
    return sum(
        max(0.0, min(x1, o[2]) - max(x0, o[0])) * max(0.0, min(y1, o[3]) - max(y0, o[1])) for o in others
    )


def place_labels(ax, points: Sequence[tuple[float, float, str, str]], marker_px: float = 7.0,
                 fontsize: float = 8, segments: Sequence[Box] = ()) -> list:  # fmt: skip
    """Label ``(x, y, text, colour)`` points of ``ax`` (in ``colour``) so that no label overlaps a label, a
    marker, a ``segment`` ``(x0, y0, x1, y1)`` (an error bar, data coordinates) or the axes' edge: each label
    takes the first free place on rings of growing radius around its point (a leader line in the point's
    colour beyond the first ring), most crowded points first. Call it once the figure's layout is final
    (positions are measured in pixels)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px = [tuple(ax.transData.transform((x, y))) for x, y, _, _ in points]
    markers = [(u - marker_px, v - marker_px, u + marker_px, v + marker_px) for u, v in px]
    for x0, y0, x1, y1 in segments:
        (u0, v0), (u1, v1) = ax.transData.transform([(x0, y0), (x1, y1)])
        markers.append((min(u0, u1) - 2, min(v0, v1) - 2, max(u0, u1) + 2, max(v0, v1) + 2))
    crowd = [sum(math.dist(p, q) < 60 for q in px) for p in px]
    placed: list[Box] = []
    out = []
    for k in sorted(range(len(points)), key=lambda k: (-crowd[k], px[k][0])):
        x, y, text, color = points[k]
        probe = ax.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        best = None
        for ring, r in enumerate(marker_px + 2 + d for d in (0, 10, 22, 36, 52, 72, 96, 124)):
            for deg in range(0, 360, 45 if ring < 2 else 15):
                dx, dy = r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))
                ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
                va = "bottom" if dy > 0.5 else "top" if dy < -0.5 else "center"
                x0 = px[k][0] + dx - {"left": 0, "right": w, "center": w / 2}[ha]
                y0 = px[k][1] + dy - {"bottom": 0, "top": h, "center": h / 2}[va]
                box = (x0, y0, x0 + w, y0 + h)
                inside = (
                    frame.x0 + 2 < box[0]
                    and box[2] < frame.x1 - 2
                    and frame.y0 + 2 < box[1] < box[3] < frame.y1 - 2
                )
                cost = _hit(box, placed) * 1e6 + _hit(box, markers) + (0 if inside else 1e9)
                if best is None or cost < best[0]:
                    best = (cost, dx, dy, ha, va, ring, box)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, dx, dy, ha, va, ring, box = best
        arrow = dict(arrowstyle="-", color=color, lw=0.7, shrinkA=1, shrinkB=marker_px) if ring else None
        offset = (dx * 72 / fig.dpi, dy * 72 / fig.dpi)
        out.append(ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va,
                               fontsize=fontsize, color=color, arrowprops=arrow))  # fmt: skip
        placed.append(box)
    return out


def plot_curves(path: str | Path, history: Sequence[Mapping[str, float]], keys: Sequence[str], title: str,
                sides: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """One panel per key of ``history`` (per-epoch or per-iteration dicts), x = epoch / iteration.

    A panel draws the key on its side (``sides``, default :data:`SIDES`: stage=train's ``loss`` is the
    training loss, its scores are on val) and ``train_<key>`` / ``val_<key>`` when the history holds them,
    so train and val are compared where both exist; the y axis is named by :data:`LABELS` ("mAP")."""
    if not history:
        return
    sides = {**SIDES, **(sides or {})}
    step = "epoch" if "epoch" in history[0] else "iteration"
    x = [h.get(step, i + 1) for i, h in enumerate(history)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False, dpi=DPI,
                             layout="constrained")  # fmt: skip
    for ax, key in zip(axes[0], keys):
        series = {sides.get(key, ""): key}
        series |= {s: f"{s}_{key}" for s in ("train", "val") if any(f"{s}_{key}" in h for h in history)}
        for side, name in sorted(series.items()):
            val = side == "val"  # train solid blue circles, val dashed orange squares, in every panel
            y = [h.get(name, float("nan")) for h in history]
            look = {"marker": ("s" if val else "o") * (len(x) <= 30), "ls": "--" if val else "-"}
            ax.plot(x, y, ms=3, color="C1" if val else "C0", label=side or None, **look)
        label = LABELS.get(key, key)
        ax.set_xlabel(step)
        ax.set_ylabel(label if len(series) > 1 or not sides.get(key) else f"{label} ({sides[key]})")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=12)
    _save(fig, path)


def plot_lines(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    marks: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Several named (x, y) curves on one axis; ``marks`` puts a dot (e.g. the best threshold) on a curve."""
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=DPI)
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    for name, (x, y) in (marks or {}).items():
        ax.plot([x], [y], "o", color="k", ms=4)
        ax.annotate(f"{name}: {y:.1f}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_many_lines(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    xticklabels: Sequence[str] | None = None,
    styles: Mapping[str, Style] | None = None,
) -> None:
    """Many named curves (e.g. one per CAM method, or one per group of methods with the same curve) on one
    axis, each with its style (``styles[name]``; default: matplotlib's cycle), the legend outside on the
    right; ``xticklabels`` names the integer x positions 0, 1, ..."""
    fig, ax = plt.subplots(figsize=(6.6, 4), dpi=DPI)
    for i, (name, (x, y)) in enumerate(series.items()):
        st = dict((styles or {}).get(name, {}))
        every = None if len(x) <= 12 else (i % 7 * max(1, len(x) // 42), max(1, len(x) // 6))
        ax.plot(x, y, label=name, lw=1.6, ms=5, markevery=every, **st)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=20, ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, labelspacing=0.7)
    _save(fig, path)


def plot_tradeoff(
    path: str | Path,
    panels: Mapping[str, Mapping[str, tuple[float, float]]],
    xlabel: str,
    title: str,
    logx: bool = True,
    flagged: Sequence[str] = (),
    styles: Mapping[str, Style] | None = None,
    errors: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> None:
    """Side-by-side scatter panels ``{ylabel: {name: (x, y)}}`` (e.g. quality against cost), each name
    with its style across panels and its label placed clear of the others (:func:`place_labels`; names
    whose points coincide share one label); ``errors[ylabel][name] = (low, high)`` draws a vertical
    interval; names in ``flagged`` are drawn hollow and labelled "(fails sanity)"."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False, dpi=DPI)
    labels = []
    for ax, (ylabel, points) in zip(axes[0], panels.items()):
        spots: dict[tuple[float, float], list[str]] = {}
        bars = []
        for name, (x, y) in points.items():
            st = (styles or {}).get(name, {"color": "C0", "marker": "o"})
            bad = name in flagged
            iv = (errors or {}).get(ylabel, {}).get(name)
            if iv is not None:
                ax.plot([x, x], iv, color=st["color"], lw=1.2, alpha=0.6)
                bars.append((x, iv[0], x, iv[1]))
            ax.plot(
                [x], [y], st["marker"], ms=8, mfc="white" if bad else st["color"], mec=st["color"], mew=1.8
            )
            spots.setdefault((x, y), []).append(name)
        pts = []
        for (x, y), names in spots.items():
            text = " = ".join(n + " (fails sanity)" * (n in flagged) for n in names)
            pts.append((x, y, text, (styles or {}).get(names[0], {}).get("color", "k")))
        labels.append((ax, pts, bars))
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(0.22)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()  # once, before the labels are placed in pixels
    for ax, pts, bars in labels:
        place_labels(ax, pts, segments=bars)
    _save(fig, path)
