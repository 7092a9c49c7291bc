"""The benchmark's HTML report, rendered by headless Chromium (Debian's chromium + chromium-driver).

The page must load from disk with no console error, every image it references must exist and load, a
screenshot of it must not be blank, and no two text labels of the rendered page may overlap (their boxes
read from the DOM). Without Chromium the test is skipped with a warning, except under
``CI=true`` where it fails (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import io as _io
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsl import io
from wsl.benchmark import COLUMNS, panel, write_benchmark

HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
)


# The boxes of every line of every text node of the page (Range.getClientRects), and the pairs of texts
# whose boxes overlap by more than a pixel both ways.
OVERLAPS = """
const boxes = [], overlaps = [];
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walk.nextNode(); n; n = walk.nextNode()) {
  if (!n.textContent.trim()) continue;
  const range = document.createRange();
  range.selectNodeContents(n);
  for (const r of range.getClientRects())
    if (r.width > 0 && r.height > 0) boxes.push([n.textContent.trim().slice(0, 60), r]);
}
for (let i = 0; i < boxes.length; i++)
  for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i][1], b = boxes[j][1];
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) overlaps.push([boxes[i][0], boxes[j][0]]);
  }
return {count: boxes.length, overlaps: overlaps};
"""


def make_report(out: Path) -> Path:
    """A report of four made-up methods with real plots and gallery images, as stage=benchmark writes it."""
    rng = np.random.default_rng(0)
    methods = ["cam", "gradcam", "scorecam", "guided_backprop"]
    x = np.linspace(0, 1, 21).tolist()
    rows = {}
    for k, m in enumerate(methods):
        row = {c.key: float(rng.uniform(0.01, 0.9)) for c in COLUMNS}  # fractions, as stored
        row["pxap"] = None  # n/a must render
        for key in (
            "gt_known_loc",
            "maxboxacc_v2",
            "miou",
            "insertion_auc",
            "average_drop",
            "sanity_spearman",
        ):
            row |= {f"{key}_low": row[key] - 0.02, f"{key}_high": row[key] + 0.03}  # bootstrap intervals
        if m == "gradcam":  # the same maps as CAM: every score but the cost identical
            row |= {key: v for key, v in rows["cam"].items() if key not in ("images_per_s", "ms_per_map")}
        row.update(
            flagged=m == "guided_backprop",
            status={"cams": "ran", "boxes": "reused", "eval/localization": "failed: ValueError: made up"},
            boxacc_curve=(x, (rng.random(21) * 0.6).tolist()),
            miou_curve=(x, (0.3 + 0.1 * np.sin(np.array(x) * 3 + k)).tolist()),
            deletion_curve=(x, np.exp(-4 * np.array(x)).tolist()),
            insertion_curve=(x, (1 - np.exp(-3 * np.array(x))).tolist()),
            sanity_curve=[0.9, 0.8 if k == 3 else 0.2],
        )
        if m == "gradcam":
            row |= {key: rows["cam"][key] for key in ("boxacc_curve", "miou_curve", "sanity_curve")}
        rows[m] = row
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    io.write_image(out / "gallery/a.png", image)
    cells = {}
    for m in methods[:3]:
        cells[m] = f"gallery/a__{m}.png"
        io.write_image(out / cells[m], panel(image, rng.random((15, 20)), [[5, 5, 40, 30]], [[8, 6, 50, 33]]))
    gallery = [{"id": "a", "class": "star", "image": "gallery/a.png", "cells": cells}]
    # as wsl.benchmark.gallery writes it: every labelled class of the image, each map with its scores
    io.write_image(out / "gallery/b.png", image)
    both = np.concatenate([panel(image, rng.random((15, 20))), np.full((60, 4, 3), 255, np.uint8), image], 1)
    scored = {}
    for m in methods[:2]:
        io.write_image(out / f"gallery/b__{m}.png", both)
        scored[m] = {"src": f"gallery/b__{m}.png", "scores": [{"box_iou": 0.71, "mask_iou": 0.5}, None]}
    gallery.append({"id": "b", "classes": ["boat", "water"], "image": "gallery/b.png", "cells": scored})
    meta = {"title": "toy / small_cnn / val", "subtitle": "made up", "notes": "Made-up values.",
            "identical_maps": {"groups": [["cam", "gradcam"]], "maps": 8, "tolerance": 0.002}}  # fmt: skip
    return write_benchmark(out, rows, meta, ["fc", "features.17"], gallery)


def chrome_driver():
    """A headless selenium Chrome driver on Debian's chromium, or skip (fail under CI=true)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if not (binary and driver_path and webdriver):
        why = "Chromium, chromium-driver or selenium missing: the HTML report was NOT rendered"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: install them, as .ci/run does)")
        warnings.warn(why, stacklevel=2)
        pytest.skip(f"!!! {why} (apt-get install chromium chromium-driver) !!!")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in HEADLESS:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def test_report_links_are_relative_and_exist(tmp_path):
    page = make_report(tmp_path).read_text(encoding="utf-8")
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(not s.startswith(("http", "/", "file:")) for s in srcs)
    assert all((tmp_path / s).is_file() for s in srcs if not s.startswith("data:"))
    assert "<script" not in page and "n/a" in page and "sanity ✗" in page and "made up" in page
    assert sum(s.startswith("plots/") for s in srcs) == 6
    assert {"benchmark.csv", "benchmark.md", "results.json"} <= {p.name for p in tmp_path.iterdir()}
    rows = io.read_json(tmp_path / "results.json")["rows"]  # fractions in the file, percent on the page
    corloc, auc = rows["cam"]["corloc"], rows["cam"]["deletion_auc"]
    assert corloc < 1 and f">{100 * corloc:.1f}</td>" in page and f">{auc:.3f}</td>" in page
    assert "Identical maps and scores: cam and gradcam" in page and "box IoU 0.71<br>mask IoU 0.50" in page
    assert rows["cam"]["gt_known_loc_low"] < rows["cam"]["gt_known_loc"] and '<span class="ci">[' in page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    report = make_report(tmp_path)
    driver = chrome_driver()
    try:
        driver.set_window_size(1400, 900)
        driver.get(report.as_uri())
        assert driver.title.startswith("CAM benchmark")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))"
        )
        assert driver.execute_script("return document.images.length") >= 8 and broken == []
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 100, 6000))
        shot = np.asarray(Image.open(_io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
        texts = driver.execute_script(OVERLAPS)
        driver.execute_script(  # the check itself: a text put over the title must be seen
            "const d = document.createElement('div'); d.textContent = 'on top'; d.style.cssText = "
            "'position:absolute;left:30px;top:25px;font-size:20px'; document.body.appendChild(d);"
        )
        planted = driver.execute_script(OVERLAPS)["overlaps"]
    finally:
        driver.quit()
    Image.fromarray(shot).save(tmp_path / "screenshot.png")
    assert shot.shape[0] > 1000 and shot.std() > 20  # not blank: text, tables and plots
    assert len(np.unique(shot.reshape(-1, 3)[::37], axis=0)) > 200  # many colours: the images drew
    assert texts["count"] > 150 and texts["overlaps"] == []  # no two text labels of the page overlap
    assert ["CAM benchmark", "on top"] in planted
