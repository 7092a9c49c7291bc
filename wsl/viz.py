"""Plots written by the stages (training curves, threshold curves, PR curves). Files only, no display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wsl.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(
    path: str | Path, history: Sequence[Mapping[str, float]], keys: Sequence[str], title: str
) -> None:
    """One panel per key of ``history`` (a list of per-epoch or per-iteration dicts), x = their index."""
    if not history:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    x = [h.get("epoch", h.get("iteration", i + 1)) for i, h in enumerate(history)]
    for ax, key in zip(axes[0], keys):
        ax.plot(x, [h.get(key, float("nan")) for h in history], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch" if "epoch" in history[0] else "iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
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
    fig, ax = plt.subplots(figsize=(5.5, 4))
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


def plot_scatter(
    path: str | Path,
    points: Mapping[str, tuple[float, float]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
) -> None:
    """Named points (e.g. one per CAM method: cost against quality)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (x, y) in points.items():
        ax.plot([x], [y], "o")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _style(i: int) -> dict:
    """Colour and line style of the i-th of many series: the 10 dark colours of tab20 solid, then the
    10 light ones dashed, then again dotted and dash-dotted."""
    return {
        "color": plt.get_cmap("tab20")((2 * i) % 20 + (i // 10) % 2),
        "linestyle": ("-", "--", ":", "-.")[(i // 10) % 4],
    }


def plot_many_lines(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    xticklabels: Sequence[str] | None = None,
) -> None:
    """Many named curves (e.g. one per CAM method) on one axis, each with its own colour and dash, the
    legend outside on the right; ``xticklabels`` names the integer x positions 0, 1, ..."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, (name, (x, y)) in enumerate(series.items()):
        ax.plot(x, y, label=name, lw=1.6, marker="o" if len(x) <= 12 else None, ms=3, **_style(i))
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=20, ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save(fig, path)


def _clusters(points: Mapping[str, tuple[float, float]], logx: bool) -> dict[tuple[float, float], list[str]]:
    """Names of points that would overlap (same y within 1 % of the y range, x within a factor of 3 on
    a log axis or 10 % of the x range), gathered under the first one so that one label names them all."""
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    yspan, xspan = (max(ys) - min(ys)) or 1.0, (max(xs) - min(xs)) or 1.0
    out: dict[tuple[float, float], list[str]] = {}
    for name, (x, y) in sorted(points.items(), key=lambda kv: kv[1][0]):
        for (x0, y0), group in out.items():
            near_x = (x / x0 <= 3 if x0 > 0 else False) if logx else abs(x - x0) <= 0.1 * xspan
            if abs(y - y0) <= 0.01 * yspan and near_x:
                group.append(name)
                break
        else:
            out[(x, y)] = [name]
    return out


def plot_tradeoff(
    path: str | Path,
    panels: Mapping[str, Mapping[str, tuple[float, float]]],
    xlabel: str,
    title: str,
    logx: bool = True,
    flagged: Sequence[str] = (),
) -> None:
    """Side-by-side scatter panels ``{ylabel: {name: (x, y)}}`` (e.g. quality against cost), one colour per
    name across panels; names in ``flagged`` are drawn hollow with a red edge."""
    names = sorted({n for pts in panels.values() for n in pts})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (ylabel, points) in zip(axes[0], panels.items()):
        for name, (x, y) in points.items():
            color = _style(names.index(name))["color"]
            bad = name in flagged
            ax.plot([x], [y], "o", ms=8, mfc="none" if bad else color, mec="red" if bad else color, mew=1.5)
        for (x, y), group in _clusters(points, logx).items():
            ax.annotate(", ".join(group), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
            ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.margins(0.18)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
