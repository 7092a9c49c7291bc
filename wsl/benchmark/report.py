"""The benchmark's files: ``report.html`` and the plots it shows (``plots/*.png``), and
:func:`write_benchmark`, which writes every file of the benchmark folder.

The page is static and self-contained: inline CSS, no script, images as relative paths inside the folder,
so it opens from disk without a server. ``rows`` is as in :mod:`wsl.benchmark.rows` (fractions); the page
and the plots show percentages where the column says so.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from wsl import io
from wsl.benchmark.columns import BY_KEY, COLUMNS, GROUPS, Column
from wsl.benchmark.rows import OK, Rows, json_safe
from wsl.benchmark.tables import best, csv_text, markdown, summary
from wsl.viz import plot_many_lines, plot_tradeoff


def _scaled(xy: tuple[list[float], list[float | None]], scale: float) -> tuple[list[float], list[float]]:
    x, y = xy
    return list(x), [float("nan") if v is None else scale * v for v in y]


def write_plots(out: Path, rows: Rows, blocks: list[str]) -> list[tuple[str, str]]:
    """The plots under ``out/plots``; returns ``(relative path, caption)`` of those drawn, the wide
    quality-against-cost figure first."""
    drawn: list[tuple[str, str]] = []
    flagged = [m for m, r in rows.items() if r.get("flagged")]
    panels = {
        BY_KEY[k].title().rstrip(" ↑↓"): {
            m: (r["ms_per_map"], BY_KEY[k].scale * r[k])
            for m, r in rows.items()
            if r.get("ms_per_map") is not None and r.get(k) is not None
        }
        for k in ("maxboxacc_v2", "miou_tuned", "insertion_auc")
    }
    panels = {k: v for k, v in panels.items() if v}
    if panels:
        plot_tradeoff(out / "plots/quality_vs_cost.png", panels, "ms per map (log)", "quality against cost",
                      flagged=flagged)  # fmt: skip
        drawn.append(("plots/quality_vs_cost.png", "Quality against cost: up and to the left is better. "
                      "Hollow red markers: flagged by the sanity check."))  # fmt: skip
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
    for key, name, scale, xlabel, ylabel, title in curves:
        series = {m: _scaled(r[key], scale) for m, r in rows.items() if r.get(key)}
        if series:
            plot_many_lines(out / f"plots/{name}.png", series, xlabel, ylabel, title)
            drawn.append((f"plots/{name}.png", title + "."))
    sanity = {
        m: (list(range(len(r["sanity_curve"]) + 1)), [1.0, *r["sanity_curve"]])
        for m, r in rows.items()
        if r.get("sanity_curve")
    }
    if sanity:
        plot_many_lines(out / "plots/sanity.png", sanity, "randomised, cumulatively from the top",
                        "Spearman of |map| with the trained model", "Cascading randomisation",
                        xticklabels=["trained", *blocks])  # fmt: skip
        drawn.append(("plots/sanity.png", "Cascading randomisation: a map that depends on the model falls "
                      "towards 0; one that stays high ignores the weights."))  # fmt: skip
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
table.gallery{width:auto}
table.gallery td,table.gallery th{text-align:center;vertical-align:middle;padding:5px}
table.gallery tbody th{text-align:right;background:#fff;cursor:default;font-size:13px}
table.gallery thead th{font-weight:400;font-size:12px;cursor:default}
table.gallery img{width:180px;height:auto;border-radius:3px;display:block;margin:auto}
td.missing{width:180px;color:#8c959f;font-size:12px}
.legend{font-size:12px;color:#59636e} .sw{display:inline-block;width:12px;height:3px;vertical-align:middle}
"""


WIDE = ' class="wide"'
FLAG = '<span class="flag" title="fails the randomisation sanity check">sanity ✗</span>'


def gallery_table(gallery: list[dict], methods: list[str], badges: dict[str, str] | None = None) -> str:
    """The overlay gallery: one column per image, a row of the images with their GT boxes, then one row
    per method; ``badges`` maps a method to HTML shown after its name."""
    head = "".join(f"<th>{_e(g['id'])}<br>class <b>{_e(g['class'])}</b></th>" for g in gallery)

    def cell(src: str | None, alt: str) -> str:
        return f'<td><img src="{_e(src)}" alt="{_e(alt)}"></td>' if src else '<td class="missing">no map</td>'

    body = ["<tr><th>image, GT boxes</th>" + "".join(cell(g["image"], g["id"]) for g in gallery) + "</tr>"]
    for m in methods:
        cells = "".join(cell(g["cells"].get(m), f"{m} on {g['id']}") for g in gallery)
        body.append(f"<tr><th>{_e(m)}{(badges or {}).get(m, '')}</th>{cells}</tr>")
    head = f"<thead><tr><th></th>{head}</tr></thead>"
    return f'<table class="gallery">{head}<tbody>{"".join(body)}</tbody></table>'


def report_html(rows: Rows, meta: dict, plots: list[tuple[str, str]], gallery: list[dict]) -> str:
    """The page: findings, the table (display units), what each column means, the plots and the gallery."""
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
            f"<td{cls(c, 'best' if m in marks[c.key] else ('na' if r.get(c.key) is None else ''))}>"
            f"{c.display(r.get(c.key))}</td>"
            for c in COLUMNS
        )
        body.append(f"<tr><td><b>{_e(m)}</b>{flag}</td>{cells}</tr>")
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
<ul class="findings">{"".join(f"<li>{_e(s)}</li>" for s in summary(rows))}</ul>
<h2>Results</h2>
<div class="scroll"><table class="results"><thead><tr><th rowspan="2">method</th>{groups}</tr>
<tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table></div>
<p class="legend">Green: best in the column. ↑ higher is better, ↓ lower is better. (%): a fraction shown as a
percentage. {_e(meta["notes"])}</p>
<h2>What the columns mean</h2><dl>{legend}</dl>
<h2>Plots</h2><div class="plots">{figs or "<p>No plot: no method produced scores.</p>"}</div>
<h2>Gallery</h2>
<p class="legend">The same images for every method: the map of the image's top-scoring labelled class over the
image, <span class="sw" style="background:#00dc00"></span> GT boxes of that class,
<span class="sw" style="background:#ff00ff"></span> the predicted box (stage=boxes).</p>
<div class="scroll">{gallery_table(gallery, list(rows), badges)}</div>
{f'<h2>Problems</h2><ul class="err">{"".join(errors)}</ul>' if errors else ""}
</main></body></html>
"""


def write_benchmark(out: Path, rows: Rows, meta: dict, blocks: list[str], gallery: list[dict]) -> Path:
    """Write ``benchmark.csv``, ``results.json`` (every value and curve, fractions), ``benchmark.md``,
    ``plots/*.png`` and ``report.html`` under ``out`` (the gallery's pictures are already there, see
    :func:`wsl.benchmark.overlays.gallery`); returns the report's path."""
    out = Path(out)
    io.write_text(out / "benchmark.csv", csv_text(rows))
    io.write_json(out / "results.json", json_safe({"meta": meta, "blocks": blocks, "rows": rows}))
    io.write_text(out / "benchmark.md", markdown(rows, meta))
    io.write_text(out / "report.html", report_html(rows, meta, write_plots(out, rows, blocks), gallery))
    return out / "report.html"
