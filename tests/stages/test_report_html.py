"""The benchmark's HTML report, rendered by headless Chromium (Debian's chromium + chromium-driver).

The page must load from disk with no console error, every image it references must exist and load, and
a screenshot of it must not be blank. Without Chromium the test is skipped with a warning, except under
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


def make_report(out: Path) -> Path:
    """A report of four made-up methods with real plots and gallery images, as stage=benchmark writes it."""
    rng = np.random.default_rng(0)
    methods = ["cam", "gradcam", "scorecam", "guided_backprop"]
    x = np.linspace(0, 1, 21).tolist()
    rows = {}
    for k, m in enumerate(methods):
        row = {c.key: float(rng.uniform(0.01, 0.9)) for c in COLUMNS}  # fractions, as stored
        row["pxap"] = None  # n/a must render
        row.update(
            flagged=m == "guided_backprop",
            status={"cams": "ran", "boxes": "reused", "eval/localization": "failed: ValueError: made up"},
            boxacc_curve=(x, (rng.random(21) * 0.6).tolist()),
            miou_curve=(x, (0.3 + 0.1 * np.sin(np.array(x) * 3 + k)).tolist()),
            deletion_curve=(x, np.exp(-4 * np.array(x)).tolist()),
            insertion_curve=(x, (1 - np.exp(-3 * np.array(x))).tolist()),
            sanity_curve=[0.9, 0.8 if k == 3 else 0.2],
        )
        rows[m] = row
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    io.write_image(out / "gallery/a.png", image)
    cells = {}
    for m in methods[:3]:
        cells[m] = f"gallery/a__{m}.png"
        io.write_image(out / cells[m], panel(image, rng.random((15, 20)), [[5, 5, 40, 30]], [[8, 6, 50, 33]]))
    gallery = [{"id": "a", "class": "star", "image": "gallery/a.png", "cells": cells}]
    meta = {"title": "toy / small_cnn / val", "subtitle": "made up", "notes": "Made-up values."}
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
    finally:
        driver.quit()
    Image.fromarray(shot).save(tmp_path / "screenshot.png")
    assert shot.shape[0] > 1000 and shot.std() > 20  # not blank: text, tables and plots
    assert len(np.unique(shot.reshape(-1, 3)[::37], axis=0)) > 200  # many colours: the images drew
