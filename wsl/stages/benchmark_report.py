"""The readable side of stage=benchmark: ``benchmark.csv``, ``benchmark.md``, the plots and ``report.html``.

``rows`` maps a method to its values, keyed by :data:`COLUMNS` (``None``: n/a), plus ``flagged`` (the
sanity check), ``status`` (what each chained stage did) and the curves the plots draw. The HTML page is
static and self-contained: inline CSS, no script, images as relative paths inside ``benchmark/``, so it
opens from disk without a server.
"""

from __future__ import annotations

import csv
import html
import io as _io
from pathlib import Path
from typing import Any

from wsl import io
from wsl.stages.benchmark_scores import COLUMNS, GROUPS, Column
from wsl.viz import plot_many_lines, plot_tradeoff

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


def write_plots(out: Path, rows: Rows, blocks: list[str]) -> list[tuple[str, str]]:
    """The plots under ``out/plots``; returns ``(relative path, caption)`` of those drawn, the wide
    quality-against-cost figure first."""
    drawn: list[tuple[str, str]] = []
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    quality = {
        "MaxBoxAccV2 (%)": "maxboxacc_v2",
        "CAM mIoU tuned (%)": "miou_tuned",
        "insertion AUC": "insertion_auc",
    }
    panels = {
        label: {
            m: (r["ms_per_map"], r[k])
            for m, r in rows.items()
            if r.get("ms_per_map") is not None and r.get(k) is not None
        }
        for label, k in quality.items()
    }
    panels = {k: v for k, v in panels.items() if v}
    if panels:
        plot_tradeoff(
            out / "plots/quality_vs_cost.png",
            panels,
            "ms per map (log)",
            "quality against cost",
            flagged=flagged,
        )
        drawn.append(
            (
                "plots/quality_vs_cost.png",
                "Quality against cost: up and to the left is better. "
                "Hollow red markers: flagged by the sanity check.",
            )
        )
    curves = (
        (
            "boxacc_curve",
            "boxacc_vs_threshold",
            "map threshold (fraction of the max)",
            "BoxAcc at IoU 0.5 (%)",
            "BoxAcc against the map threshold (every contour boxed)",
        ),
        (
            "miou_curve",
            "miou_vs_threshold",
            "background threshold",
            "CAM mIoU (%)",
            "CAM mask mIoU against the background threshold",
        ),
        (
            "deletion_curve",
            "deletion_curves",
            "fraction of pixels deleted",
            "class probability",
            "Deletion: the probability should fall fast (lower area is better)",
        ),
        (
            "insertion_curve",
            "insertion_curves",
            "fraction of pixels inserted",
            "class probability",
            "Insertion: the probability should rise fast (higher area is better)",
        ),
    )
    for key, name, xlabel, ylabel, title in curves:
        series = {m: r[key] for m, r in rows.items() if r.get(key)}
        if series:
            plot_many_lines(out / f"plots/{name}.png", series, xlabel, ylabel, title)
            drawn.append((f"plots/{name}.png", title + "."))
    sanity = {
        m: (list(range(len(r["sanity_curve"]) + 1)), [1.0, *r["sanity_curve"]])
        for m, r in rows.items()
        if r.get("sanity_curve")
    }
    if sanity:
        plot_many_lines(
            out / "plots/sanity.png",
            sanity,
            "randomised, cumulatively from the top",
            "Spearman of |map| with the trained model",
            "Cascading randomisation",
            xticklabels=["trained", *blocks],
        )
        drawn.append(
            (
                "plots/sanity.png",
                "Cascading randomisation: a map that depends on the model falls "
                "towards 0; one that stays high ignores the weights.",
            )
        )
    return drawn


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


CSS = """
body{font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;
margin:0;background:#f6f8fa}
main{max-width:1400px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:36px 0 10px;border-bottom:1px solid #d8dee4;
padding-bottom:4px} .meta{color:#59636e;font-size:13px;margin-bottom:14px}
ul.findings{background:#eef6ff;border-left:4px solid #0969da;padding:10px 12px 10px 30px;margin:12px 0}
.scroll{overflow-x:auto;border:1px solid #d8dee4;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:6px 7px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;cursor:help}
table.results th{white-space:normal;vertical-align:bottom;font-size:12px;min-width:50px}
table.results th.group{text-align:center;text-transform:uppercase;letter-spacing:.06em;font-size:11px;
color:#59636e;cursor:default} .start{border-left:2px solid #d0d7de}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:inherit}
tbody tr:nth-child(even){background:#fafbfc} tbody tr:nth-child(odd){background:#fff}
td.best{background:#dafbe1;font-weight:700;color:#116329} td.na{color:#8c959f}
.flag{display:inline-block;margin-left:6px;padding:0 6px;border-radius:9px;background:#ffebe9;color:#cf222e;
font-size:11px;font-weight:600} .err{color:#cf222e}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;font-size:13px} dt{font-weight:600}
dd{margin:0;color:#424a53}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:18px}
figure{margin:0;border:1px solid #d8dee4;border-radius:6px;padding:8px;background:#fff}
figure img{width:100%;height:auto} figure.wide{grid-column:1/-1}
figcaption{font-size:12px;color:#59636e;margin-top:4px}
table.gallery td,table.gallery th{text-align:center;vertical-align:top;padding:4px;white-space:normal}
table.gallery img{width:150px;height:auto;image-rendering:auto;border-radius:3px;display:block;margin:auto}
table.gallery td:first-child{font-size:12px} .missing{width:150px;color:#8c959f;font-size:12px}
.legend{font-size:12px;color:#59636e} .sw{display:inline-block;width:12px;height:3px;vertical-align:middle}
"""


WIDE = ' class="wide"'


def report_html(rows: Rows, meta: dict, plots: list[tuple[str, str]], gallery: list[dict]) -> str:
    """The page: findings, the table, what each column means, the plots and the overlay gallery."""
    marks = {c.key: best(rows, c) for c in COLUMNS}
    starts = {keys[0] for keys in GROUPS.values()}  # a rule left of each group

    def cls(c: Column, *extra: str) -> str:
        names = [e for e in extra if e] + ["start"] * (c.key in starts)
        return f' class="{" ".join(names)}"' if names else ""

    groups = "".join(f'<th colspan="{len(k)}" class="group start">{_e(g)}</th>' for g, k in GROUPS.items())
    head = "".join(f'<th title="{_e(c.help)}"{cls(c)}>{_e(header(c))}</th>' for c in COLUMNS)
    body = []
    for m, r in rows.items():
        flag = '<span class="flag" title="fails the randomisation check">sanity ✗</span>' * bool(
            r.get("flagged")
        )
        cells = "".join(
            f"<td{cls(c, 'best' if m in marks[c.key] else ('na' if r.get(c.key) is None else ''))}>"
            f"{fmt(r.get(c.key), c)}</td>"
            for c in COLUMNS
        )
        body.append(f"<tr><td><b>{_e(m)}</b>{flag}</td>{cells}</tr>")
    legend = "".join(f"<dt>{_e(header(c))}</dt><dd>{_e(c.help)}.</dd>" for c in COLUMNS)
    figs = "".join(
        f'<figure{WIDE * (i == 0 and "cost" in p)}><img src="{_e(p)}" alt="{_e(cap)}">'
        f"<figcaption>{_e(cap)}</figcaption></figure>"
        for i, (p, cap) in enumerate(plots)
    )
    methods = list(rows)
    g_head = "<th>image (GT boxes)</th>" + "".join(f"<th>{_e(m)}</th>" for m in methods)
    g_rows = []
    for g in gallery:
        cells = "".join(
            f'<td><img src="{_e(g["cells"][m])}" alt="{_e(m)} {_e(g["id"])}"></td>'
            if g["cells"].get(m)
            else '<td><div class="missing">no map</div></td>'
            for m in methods
        )
        g_rows.append(
            f'<tr><td><img src="{_e(g["image"])}" alt="{_e(g["id"])}">{_e(g["id"])}<br>'
            f"class: <b>{_e(g['class'])}</b></td>{cells}</tr>"
        )
    errors = [
        f"<li><b>{_e(m)}</b>: {_e(k)} {_e(v)}</li>"
        for m, r in rows.items()
        for k, v in r.get("status", {}).items()
        if not v.startswith(("ran", "reused"))
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">
<title>CAM benchmark: {_e(meta["title"])}</title><style>{CSS}</style></head>
<body><main>
<h1>CAM benchmark</h1><div class="meta">{_e(meta["title"])} · {_e(meta["subtitle"])}</div>
<ul class="findings">{"".join(f"<li>{_e(s)}</li>" for s in summary(rows))}</ul>
<h2>Results</h2>
<div class="scroll"><table class="results"><thead><tr><th rowspan="2">method</th>{groups}</tr>
<tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table></div>
<p class="legend">Green: best in the column. ↑ higher is better, ↓ lower is better. {_e(meta["notes"])}</p>
<h2>What the columns mean</h2><dl>{legend}</dl>
<h2>Plots</h2><div class="plots">{figs or "<p>No plot: no method produced scores.</p>"}</div>
<h2>Gallery</h2>
<p class="legend">The same images for every method: the map of the image's top-scoring labelled class over the
image, <span class="sw" style="background:#00dc00"></span> GT boxes of that class,
<span class="sw" style="background:#ff00ff"></span> the predicted box (stage=boxes).</p>
<div class="scroll"><table class="gallery"><thead><tr>{g_head}</tr></thead><tbody>{"".join(g_rows)}</tbody>
</table></div>
{f'<h2>Problems</h2><ul class="err">{"".join(errors)}</ul>' if errors else ""}
</main></body></html>
"""
