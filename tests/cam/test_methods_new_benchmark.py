"""stage=benchmark with its default ``stage.methods=null`` runs every registered CAM method, the new ones
of issue 13 included, each with its measured cost (slow: the whole chain per method, on two images)."""

from __future__ import annotations

import csv

import pytest

from wsl.cam.methods import METHODS
from wsl.layout import RunLayout
from wsl.stages import benchmark


@pytest.mark.slow
def test_benchmark_runs_every_registered_method(trained, compose_at):
    overrides = [
        "num_workers=0",
        "stage=benchmark",
        "stage.limit=2",  # the cost probe times the second image (the first is its warm-up)
        "stage.faithfulness.images=0",  # the probes themselves: tests/stages/test_benchmark.py
        "stage.sanity.images=0",
        "stage.cost_images=1",
        "stage.gallery.images=0",
    ]
    cfg = compose_at(overrides, trained)
    assert cfg.stage.methods is None  # the default: every method
    result = benchmark.run(cfg)
    assert list(result["methods"]) == list(METHODS)
    with open(RunLayout(cfg.paths.run_dir).benchmark() / "benchmark.csv", encoding="utf-8") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == list(METHODS)
    for m, r in rows.items():
        assert "failed" not in r["status"], (m, r["status"])
        assert float(r["images_per_s"]) > 0 and float(r["ms_per_map"]) > 0, m  # its cost was measured
