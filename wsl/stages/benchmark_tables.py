"""The tables of stage=benchmark: ``benchmark.csv`` and ``benchmark.md``, and the best value per column.

``rows`` maps a method to its values, keyed by :data:`COLUMNS` (``None``: n/a), plus ``flagged`` (the
sanity check), ``status`` (what each chained stage did) and the curves the plots draw.
"""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path
from typing import Any

from wsl import io
from wsl.stages.benchmark_scores import COLUMNS, Column

Rows = dict[str, dict[str, Any]]
ARROW = {"max": "↑", "min": "↓", None: ""}


def best(rows: Rows, col: Column) -> set[str]:
    """The methods holding the best value of ``col`` as shown (ties share it); empty when nothing is
    comparable or when every method shows the same value (nothing to choose)."""
    vals = {m: round(r[col.key], col.digits) for m, r in rows.items() if r.get(col.key) is not None}
    if not vals or col.better is None or (len(vals) > 1 and len(set(vals.values())) == 1):
        return set()
    target = (max if col.better == "max" else min)(vals.values())
    return {m for m, v in vals.items() if v == target}


def fmt(value: float | None, col: Column) -> str:
    return "n/a" if value is None else f"{value:.{col.digits}f}"


def header(col: Column) -> str:
    unit = f" ({col.unit})" if col.unit else ""
    return f"{col.header}{unit} {ARROW[col.better]}".strip()


def write_csv(path: Path, rows: Rows) -> None:
    """One row per method, raw values in the table's units ("n/a" where absent), the sanity flag."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(c.key for c in COLUMNS), "sanity_flagged", "status"])
    for m, r in rows.items():
        vals = ["n/a" if r.get(c.key) is None else round(r[c.key], 6) for c in COLUMNS]
        status = "; ".join(f"{k} {v}" for k, v in r.get("status", {}).items())
        w.writerow([m, *vals, str(bool(r.get("flagged"))).lower(), status])
    io.write_text(path, buf.getvalue())


def summary(rows: Rows) -> list[str]:
    """One-line findings: the best method for a few headline columns and the flagged ones."""
    cols = {c.key: c for c in COLUMNS}
    out = []
    for key, text in (
        ("maxboxacc_v2", "Best localization (MaxBoxAccV2): {} ({} %)."),
        ("miou_tuned", "Best CAM masks (mIoU at the tuned threshold): {} ({} %)."),
        ("insertion_auc", "Most faithful by insertion AUC: {} ({})."),
        ("deletion_auc", "Most faithful by deletion AUC: {} ({})."),
        ("ms_per_map", "Fastest: {} ({} ms per map)."),
    ):
        winners = sorted(best(rows, cols[key]))
        if winners:
            out.append(text.format(", ".join(winners), fmt(rows[winners[0]][key], cols[key])))
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    if flagged:
        out.append(
            "Flagged by the sanity check (the maps barely change when the model's top layers are "
            f"randomised, so they do not show what the model learned): {', '.join(flagged)}."
        )
    return out


def markdown(rows: Rows, meta: dict) -> str:
    """The table (best per column in bold, arrows saying which way is better) and a legend."""
    marks = {c.key: best(rows, c) for c in COLUMNS}
    lines = [
        f"# CAM benchmark: {meta['title']}",
        "",
        *summary(rows),
        "",
        "| method | " + " | ".join(header(c) for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for m, r in rows.items():
        cells = [
            f"**{fmt(r.get(c.key), c)}**" if m in marks[c.key] else fmt(r.get(c.key), c) for c in COLUMNS
        ]
        name = f"{m} ⚠" if r.get("flagged") else m
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bold: best in the column. ↑ higher is better, ↓ lower is better. ⚠: flagged by the sanity "
        "check. " + meta["notes"],
        "",
    ]
    lines += [f"- **{header(c)}**: {c.help}." for c in COLUMNS]
    return "\n".join(lines) + "\n"
