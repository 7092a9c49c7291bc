"""The tables of the benchmark: ``benchmark.csv`` (fractions, as stored) and ``benchmark.md`` (display
units), the best value per column and the one-line findings. ``rows`` is as in :mod:`wsl.benchmark.rows`."""

from __future__ import annotations

import csv
import io as _io

from wsl.benchmark.columns import BY_KEY, COLUMNS, Column
from wsl.benchmark.rows import Rows


def best(rows: Rows, col: Column) -> set[str]:
    """The methods holding the best value of ``col`` as shown (ties share it); empty when nothing is
    comparable, when ``col`` has no best, or when every method shows the same value (nothing to choose)."""
    vals = {m: col.shown(r[col.key]) for m, r in rows.items() if r.get(col.key) is not None}
    if not vals or col.better is None or (len(vals) > 1 and len(set(vals.values())) == 1):
        return set()
    target = (max if col.better == "max" else min)(vals.values())
    return {m for m, v in vals.items() if v == target}


def csv_text(rows: Rows) -> str:
    """One line per method: the values as stored (fractions; "n/a" where absent), the sanity flag and
    what each step did."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(c.key for c in COLUMNS), "sanity_flagged", "status"])
    for m, r in rows.items():
        vals = ["n/a" if r.get(c.key) is None else round(float(r[c.key]), 6) for c in COLUMNS]
        status = "; ".join(f"{k} {v}" for k, v in r.get("status", {}).items())
        w.writerow([m, *vals, str(bool(r.get("flagged"))).lower(), status])
    return buf.getvalue()


def summary(rows: Rows) -> list[str]:
    """One-line findings: the best method for a few headline columns and the flagged ones."""
    out = []
    for key, text in (
        ("maxboxacc_v2", "Best localization (MaxBoxAccV2): {} ({})."),
        ("miou_tuned", "Best CAM masks (mIoU at the tuned threshold): {} ({})."),
        ("insertion_auc", "Most faithful by insertion AUC: {} ({})."),
        ("deletion_auc", "Most faithful by deletion AUC: {} ({})."),
        ("ms_per_map", "Fastest: {} ({} ms per map)."),
    ):
        col = BY_KEY[key]
        winners = sorted(best(rows, col))
        if winners:
            value = col.display(rows[winners[0]][key]) + " %" * col.percent
            out.append(text.format(", ".join(winners), value))
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    if flagged:
        out.append(
            "Flagged by the sanity check (the maps barely change when the model's top layers are "
            f"randomised, so they do not show what the model learned): {', '.join(flagged)}."
        )
    return out


def markdown(rows: Rows, meta: dict) -> str:
    """The table in display units (best per column in bold, arrows saying which way is better), the
    findings and a legend."""
    marks = {c.key: best(rows, c) for c in COLUMNS}
    lines = [
        f"# CAM benchmark: {meta['title']}",
        "",
        *summary(rows),
        "",
        "| method | " + " | ".join(c.title() for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for m, r in rows.items():
        cells = [
            f"**{c.display(r.get(c.key))}**" if m in marks[c.key] else c.display(r.get(c.key))
            for c in COLUMNS
        ]
        name = f"{m} ⚠" if r.get("flagged") else m
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bold: best in the column. ↑ higher is better, ↓ lower is better. ⚠: flagged by the sanity "
        "check. (%): a fraction shown as a percentage (the CSV and results.json hold fractions). "
        + meta.get("notes", ""),
        "",
    ]
    lines += [f"- **{c.title()}**: {c.help}." for c in COLUMNS]
    return "\n".join(lines) + "\n"
