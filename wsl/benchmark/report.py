"""The benchmark's files: ``report.html`` and :func:`write_benchmark`, which writes every file of the
benchmark folder (the plots are :mod:`wsl.benchmark.plots`', the gallery's pictures
:mod:`wsl.benchmark.gallery`'s).

The page is static and self-contained: inline CSS, no script, images as relative paths inside the folder,
so it opens from disk without a server. ``rows`` is as in :mod:`wsl.benchmark.rows` (fractions); the page
shows percentages where the column says so, each value with its bootstrap interval where it has one, each
method with the colour it has in the plots.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from wsl import io
from wsl.benchmark.columns import COLUMNS, GROUPS, INTERVAL_NOTE, NO_INTERVAL, Column
from wsl.benchmark.gallery import colorbar_css
from wsl.benchmark.plots import write_plots
from wsl.benchmark.rows import OK, Rows, json_safe
from wsl.benchmark.styles import style
from wsl.benchmark.tables import BEST_RULE, best, csv_text, findings, markdown


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
table.gallery{width:auto}
table.gallery td,table.gallery th{text-align:center;vertical-align:middle;padding:5px}
table.gallery tbody th{text-align:right;background:#fff;cursor:default;font-size:13px}
table.gallery thead th{font-weight:400;font-size:12px;cursor:default}
table.gallery img{height:auto;border-radius:3px;display:block;margin:auto}
td.missing{width:140px;color:#8c959f;font-size:12px}
.row{display:flex;margin:3px auto 0} .row span{flex:1;font-size:11px;line-height:1.3;text-align:center}
.scores span{color:#424a53} .ci{font-size:11px;color:#59636e;font-weight:400}
.legend{font-size:12px;color:#59636e} .sw{display:inline-block;width:12px;height:3px;vertical-align:middle}
.sq{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.colorbar{display:flex;align-items:center;gap:8px;font-size:12px;color:#59636e;margin:4px 0 12px}
.ramp{display:inline-block;width:260px;height:12px;border:1px solid #d0d7de}
"""


WIDE = ' class="wide"'
FLAG = '<span class="flag" title="fails the randomisation sanity check">sanity ✗</span>'


TILE = 140  # px per class map in the gallery


def swatch(method: str) -> str:
    """A small square in the method's plot colour (:func:`wsl.benchmark.styles.style`)."""
    return f'<span class="sq" style="background:{style(method)["color"]}"></span>'


def _score(s: dict | None) -> str:
    if s is None:
        return "no map"
    parts = [
        f"{k} IoU {s[v]:.2f}" for k, v in (("box", "box_iou"), ("mask", "mask_iou")) if s.get(v) is not None
    ]
    return "<br>".join(parts) or "no score"


def gallery_table(gallery: list[dict], methods: list[str], badges: dict[str, str] | None = None) -> str:
    """The overlay gallery: one column per image (its labelled classes named in the header), a row of the
    images with their GT boxes, then one row per method with its map of every labelled class and each
    map's scores; ``badges`` maps a method to HTML shown after its name. A cell may also be a bare picture
    path (one map, no score)."""
    head, body = [], ["<tr><th>image, GT boxes</th>"]
    for g in gallery:
        classes = g.get("classes") or [g["class"]]
        width = TILE * len(classes)
        names = "".join(f"<span>{_e(c)}</span>" for c in classes)
        head.append(f'<th>{_e(g["id"])}<div class="row" style="width:{width}px">{names}</div></th>')
        body.append(f'<td><img src="{_e(g["image"])}" alt="{_e(g["id"])}" style="width:{TILE}px"></td>')
    body.append("</tr>")
    for m in methods:
        cells = []
        for g in gallery:
            cell, k = g["cells"].get(m), len(g.get("classes") or [g["class"]])
            if cell is None:
                cells.append('<td class="missing">no map</td>')
                continue
            src, scores = (cell, None) if isinstance(cell, str) else (cell["src"], cell.get("scores"))
            width = TILE * (k if scores is not None else 1)
            img = f'<img src="{_e(src)}" alt="{_e(m)} on {_e(g["id"])}" style="width:{width}px">'
            row = "" if scores is None else "".join(f"<span>{_score(s)}</span>" for s in scores)
            cells.append(f'<td>{img}<div class="row scores" style="width:{width}px">{row}</div></td>')
        body.append(f"<tr><th>{swatch(m)}{_e(m)}{(badges or {}).get(m, '')}</th>{''.join(cells)}</tr>")
    return (f'<table class="gallery"><thead><tr><th></th>{"".join(head)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")  # fmt: skip


def _cell(row: dict, c: Column, classes: str) -> str:
    iv = c.display_interval(row)
    ci = f'<br><span class="ci">{iv}</span>' if iv else ""
    return f"<td{classes}>{c.display(row.get(c.key))}{ci}</td>"


def report_html(rows: Rows, meta: dict, plots: list[tuple[str, str]], gallery: list[dict]) -> str:
    """The page: findings, the table (display units, intervals), what each column means, the plots and
    the gallery."""
    marks = {c.key: best(rows, c) for c in COLUMNS}
    starts = {keys[0] for keys in GROUPS.values()}  # a rule left of each group

    def cls(c: Column, *extra: str) -> str:
        names = [e for e in extra if e] + ["start"] * (c.key in starts)
        return f' class="{" ".join(names)}"' if names else ""

    groups = "".join(f'<th colspan="{len(k)}" class="group start">{_e(g)}</th>' for g, k in GROUPS.items())
    head = "".join(f'<th title="{_e(c.help)}"{cls(c)}>{_e(c.title())}</th>' for c in COLUMNS)
    body = []
    for m, r in rows.items():
        flag = FLAG * bool(r.get("flagged"))
        cells = "".join(
            _cell(r, c, cls(c, "best" if m in marks[c.key] else ("na" if r.get(c.key) is None else "")))
            for c in COLUMNS
        )
        body.append(f"<tr><td>{swatch(m)}<b>{_e(m)}</b>{flag}</td>{cells}</tr>")
    badges = {m: FLAG for m, r in rows.items() if r.get("flagged")}
    legend = "".join(f"<dt>{_e(c.title())}</dt><dd>{_e(c.help)}.</dd>" for c in COLUMNS)
    figs = "".join(
        f'<figure{WIDE * (i == 0 and "cost" in p)}><img src="{_e(p)}" alt="{_e(cap)}">'
        f"<figcaption>{_e(cap)}</figcaption></figure>"
        for i, (p, cap) in enumerate(plots)
    )
    errors = [
        f"<li><b>{_e(m)}</b>: {_e(k)} {_e(v)}</li>"
        for m, r in rows.items()
        for k, v in r.get("status", {}).items()
        if not str(v).startswith(OK)
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">
<title>CAM benchmark: {_e(meta["title"])}</title><style>{CSS}</style></head>
<body><main>
<h1>CAM benchmark</h1><div class="meta">{_e(meta["title"])} · {_e(meta["subtitle"])}</div>
<ul class="findings">{"".join(f"<li>{_e(s)}</li>" for s in findings(rows, meta))}</ul>
<h2>Results</h2>
<div class="scroll"><table class="results"><thead><tr><th rowspan="2">method</th>{groups}</tr>
<tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table></div>
<p class="legend">{_e(BEST_RULE)} ↑ higher is better, ↓ lower is better. (%): a fraction shown as a
percentage. {_e(INTERVAL_NOTE)}. {_e(NO_INTERVAL)}. {_e(meta["notes"])}</p>
<h2>What the columns mean</h2><dl>{legend}</dl>
<h2>Plots</h2><div class="plots">{figs or "<p>No plot: no method produced scores.</p>"}</div>
<h2>Gallery</h2>
<p class="legend">The same images for every method, with the map of every labelled class of the image
(each divided by its maximum) over the image, <span class="sw" style="background:#00dc00"></span> GT boxes
of that class, <span class="sw" style="background:#ff00ff"></span> the predicted box (stage=boxes). Under
each map: the IoU of its Grad-CAM box (largest segment above 15 % of the maximum) with the class's GT box
and of the same region with the class's mask.</p>
<div class="colorbar"><span>map 0</span><span class="ramp" style="background:{colorbar_css()}"></span>
<span>1 (the map's maximum)</span></div>
<div class="scroll">{gallery_table(gallery, list(rows), badges)}</div>
{f'<h2>Problems</h2><ul class="err">{"".join(errors)}</ul>' if errors else ""}
</main></body></html>
"""


def write_benchmark(out: Path, rows: Rows, meta: dict, blocks: list[str], gallery: list[dict]) -> Path:
    """Write ``benchmark.csv``, ``results.json`` (every value, interval and curve, fractions; the gallery's
    scores), ``benchmark.md``, ``plots/*.png`` and ``report.html`` under ``out`` (the gallery's pictures
    are already there, see :func:`wsl.benchmark.gallery.gallery`); returns the report's path."""
    out = Path(out)
    io.write_text(out / "benchmark.csv", csv_text(rows))
    io.write_json(out / "results.json", json_safe({"meta": meta, "blocks": blocks, "rows": rows,
                                                   "gallery": gallery}))  # fmt: skip
    io.write_text(out / "benchmark.md", markdown(rows, meta))
    io.write_text(out / "report.html", report_html(rows, meta, write_plots(out, rows, blocks), gallery))
    return out / "report.html"
