"""The tables of the benchmark: ``benchmark.csv`` (fractions, as stored) and ``benchmark.md`` (display
units), the best value per column, the methods whose results coincide and the one-line findings. ``rows``
is as in :mod:`wsl.benchmark.rows`."""

from __future__ import annotations

import csv
import io as _io

from wsl.benchmark.columns import BY_KEY, COLUMNS, GROUPS, INTERVAL_NOTE, NO_INTERVAL, Column
from wsl.benchmark.rows import Rows
from wsl.benchmark.styles import TOLERANCE, identical_groups

CURVES = ("boxacc_curve", "miou_curve", "deletion_curve", "insertion_curve", "sanity_curve")
# What "identical scores" compares: every column but the cost columns (they differ run to run), and curves.
SCORES = tuple(k for k in BY_KEY if k not in GROUPS["cost"]) + CURVES

BEST_RULE = (
    "Bold: best in the column among the methods that pass the sanity check (ties as shown share it); no "
    "column is marked where every method shows the same value, where the values differ by less than the "
    "column's documented minimum, where the best value is shared by most methods (more than half, at "
    "least 3), or where the column is a pass / fail check (sanity ρ). Where the intervals of two methods "
    "overlap, their order may be chance."
)


def best(rows: Rows, col: Column) -> set[str]:
    """The methods holding the best value of ``col`` as shown (ties share it), never one flagged by the
    sanity check; empty when the best means nothing (see :data:`BEST_RULE`): ``col`` has no best, nothing
    is comparable, every method shows the same value or they differ by less than ``col.minimum``, or the
    best is shared by more than half of the methods (and at least 3)."""
    vals = {m: float(r[col.key]) for m, r in rows.items() if r.get(col.key) is not None}
    if not vals or col.better is None:
        return set()
    spread = max(vals.values()) - min(vals.values())
    if len(vals) > 1 and (len({col.shown(v) for v in vals.values()}) == 1 or spread < col.minimum):
        return set()
    passing = {m: v for m, v in vals.items() if not rows[m].get("flagged")}
    if not passing:
        return set()
    target = (max if col.better == "max" else min)(passing.values())
    winners = {
        m for m, v in passing.items() if col.shown(v) == col.shown(target) or abs(v - target) < col.minimum
    }
    if len(vals) > 1 and len(winners) >= 3 and len(winners) > len(vals) / 2:
        return set()
    return winners


def identical(rows: Rows) -> list[list[str]]:
    """Groups (two or more) of methods whose scores and curves (:data:`SCORES`) all agree to
    :data:`~wsl.benchmark.styles.TOLERANCE`; a method with no score at all is in none."""
    values = {m: [r.get(k) for k in SCORES] for m, r in rows.items()}
    return [g for g in identical_groups(values) if len(g) > 1]


def names(methods: list[str]) -> str:
    """``"a, b and c"``."""
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def csv_text(rows: Rows) -> str:
    """One line per method: the values as stored (fractions; "n/a" where absent), the sanity flag, what
    each step did, then the bootstrap interval of every column that may have one (``<key>_low``,
    ``<key>_high``)."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    bounded = [c for c in COLUMNS if c.interval]
    w.writerow(["method", *(c.key for c in COLUMNS), "sanity_flagged", "status",
                *(k for c in bounded for k in (c.low, c.high))])  # fmt: skip
    for m, r in rows.items():
        vals = ["n/a" if r.get(c.key) is None else round(float(r[c.key]), 6) for c in COLUMNS]
        status = "; ".join(f"{k} {v}" for k, v in r.get("status", {}).items())
        ivs = ["n/a" if r.get(k) is None else round(float(r[k]), 6) for c in bounded for k in (c.low, c.high)]
        w.writerow([m, *vals, str(bool(r.get("flagged"))).lower(), status, *ivs])
    return buf.getvalue()


def _identity_lines(rows: Rows, maps: dict | None) -> list[str]:
    """Which methods gave identical scores (:func:`identical`) and, from ``maps``
    (:meth:`wsl.benchmark.Probes.identical_maps`), identical stored maps, in words."""
    maps = maps or {}
    map_groups = [list(g) for g in maps.get("groups", [])]
    checked = (
        f"their {maps.get('maps')} stored maps of the faithfulness images agree to "
        f"{maps.get('tolerance', 0):g} once each is divided by its maximum"
    )
    scores = (
        f"every localization, segmentation, faithfulness and sanity value and curve agrees to {TOLERANCE:g}; "
        "only their cost differs; the plots draw them once"
    )
    out = []
    for group in identical(rows):
        if group in map_groups:
            out.append(f"Identical maps and scores: {names(group)} ({checked}; {scores}).")
        else:
            out.append(f"Identical scores: {names(group)} ({scores}).")
    out += [f"Identical maps: {names(g)} ({checked})." for g in map_groups if g not in identical(rows)]
    return out


def summary(rows: Rows, maps: dict | None = None) -> list[str]:
    """One-line findings: the best method for a few headline columns (with its interval), the methods
    whose scores (and, with ``maps`` from :meth:`wsl.benchmark.Probes.identical_maps`, maps) are
    identical, and the flagged ones."""
    out = []
    for key, text in (
        ("maxboxacc_v2", "Best localization (MaxBoxAccV2): {} ({})."),
        ("miou_tuned", "Best CAM masks (mIoU at the tuned threshold): {} ({})."),
        ("insertion_auc", "Most faithful by insertion AUC: {} ({})."),
        ("deletion_auc", "Most faithful by deletion AUC: {} ({})."),
        ("ms_per_map", "Fastest: {} ({} ms per map)."),
    ):
        col = BY_KEY[key]
        winners = sorted(best(rows, col), key=list(rows).index)
        if winners:
            value = col.display(rows[winners[0]][key]) + " %" * col.percent
            iv = col.display_interval(rows[winners[0]])
            out.append(text.format(", ".join(winners), value + (f", 95 % interval {iv}" if iv else "")))
    out += _identity_lines(rows, maps)
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    if flagged:
        out.append(
            "Flagged by the sanity check (the maps barely change when the model's top layers are "
            f"randomised, so they do not show what the model learned): {', '.join(flagged)}."
        )
    return out


def findings(rows: Rows, meta: dict) -> list[str]:
    """:func:`summary` with the identical maps that ``meta["identical_maps"]`` holds, if any."""
    return summary(rows, meta.get("identical_maps"))


def cell(row: dict, col: Column, bold: bool) -> str:
    """A markdown cell: the value (bold when ``bold``) and its interval."""
    value = col.display(row.get(col.key))
    iv = col.display_interval(row)
    return (f"**{value}**" if bold else value) + (f" {iv}" if iv else "")


def markdown(rows: Rows, meta: dict) -> str:
    """The table in display units (best per column in bold, intervals, arrows saying which way is
    better), the findings and a legend."""
    marks = {c.key: best(rows, c) for c in COLUMNS}
    lines = [
        f"# CAM benchmark: {meta['title']}",
        "",
        *findings(rows, meta),
        "",
        "| method | " + " | ".join(c.title() for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for m, r in rows.items():
        cells = [cell(r, c, m in marks[c.key]) for c in COLUMNS]
        name = f"{m} ⚠" if r.get("flagged") else m
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{BEST_RULE} ↑ higher is better, ↓ lower is better. ⚠: flagged by the sanity check. (%): a fraction "
        f"shown as a percentage (the CSV and results.json hold fractions). {INTERVAL_NOTE}. {NO_INTERVAL}. "
        + meta.get("notes", ""),
        "",
    ]
    lines += [f"- **{c.title()}**: {c.help}." for c in COLUMNS]
    return "\n".join(lines) + "\n"
