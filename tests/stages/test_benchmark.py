"""stage=benchmark: the table helpers on hand-made values, and the whole stage on the small toy data."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from wsl import io
from wsl.stages import UserError, benchmark, train
from wsl.stages.benchmark_chain import stage_config
from wsl.stages.benchmark_probes import PeakMemory, default_blocks
from wsl.stages.benchmark_scores import COLUMNS, lookup
from wsl.stages.benchmark_tables import best, markdown

FAST = ["cam", "gradcam", "eigencam"]


def test_lookup_reads_flat_nested_and_absent_keys():
    m = {"gt_known_loc": 61.5, "maxboxacc": {"v2": {"max_box_acc": 70.0}}, "pxap": None, "corloc": "x"}
    assert lookup(m, ("gt_known_loc",)) == 61.5
    assert lookup(m, ("max_box_acc_v2", "maxboxacc.v2.max_box_acc")) == 70.0
    assert lookup({"deep": {"Pointing-Game": 40}}, ("pointing_game",)) == 40.0
    assert lookup(m, ("pxap",)) is None and lookup(m, ("corloc",)) is None
    assert lookup(None, ("miou",)) is None


def test_best_and_markdown_mark_the_right_cells():
    cols = {c.key: c for c in COLUMNS}
    rows = {
        "a": {"top1_loc_err": 30.0, "gt_known_loc": 50.0, "miou": 40.0},
        "b": {"top1_loc_err": 20.0, "gt_known_loc": 50.04, "miou": 40.0},
        "c": {"top1_loc_err": 25.0, "gt_known_loc": 41.0, "miou": None, "flagged": True},
    }
    assert best(rows, cols["top1_loc_err"]) == {"b"}  # lower is better
    assert best(rows, cols["gt_known_loc"]) == {"a", "b"}  # equal as shown: they share it
    assert best(rows, cols["miou"]) == set()  # every method shows the same value: nothing to mark
    assert best(rows, cols["pxap"]) == set()  # n/a everywhere
    md = markdown(rows, {"title": "t", "notes": ""})
    assert "top-1 loc err (%) ↓" in md and "GT-known loc (%) ↑" in md
    assert "| b | **50.0** | **20.0** |" in md and "| c ⚠ | 41.0 | 25.0 |" in md and "n/a" in md


def test_stage_config_swaps_groups_and_stays_strict(compose):
    cfg = compose(["stage=benchmark", "cam.target_layer=features.9"])
    sub = stage_config(cfg, "cams", "layercam", split="val", limit=3)
    assert sub.stage.name == "cams" and sub.stage.limit == 3 and sub.stage.flip is True
    assert sub.cam.method == "layercam" and sub.cam.target_layer == "features.9"
    assert cfg.stage.name == "benchmark" and cfg.cam.name == "gradcam"  # the original is untouched
    with pytest.raises(ConfigAttributeError):  # struct mode: a typo fails
        sub.stage.limt = 1
    with pytest.raises(KeyError):
        stage_config(cfg, "boxes", "cam", limit=3)
    OmegaConf.set_readonly(cfg, True)
    assert OmegaConf.is_readonly(stage_config(cfg, "eval", "cam", task="segmentation"))


def test_unknown_method_is_one_clear_error():
    with pytest.raises(UserError, match="stage.methods.*gradcom"):
        benchmark.resolve_methods(["gradcam", "gradcom"])
    assert benchmark.resolve_methods(None)[:2] == ["cam", "gradcam"]


def test_default_blocks_and_peak_memory():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    assert default_blocks(net, 2) == ["4", "2"]
    with PeakMemory(torch.device("cpu")) as mem:
        big = torch.ones(64, 2**20)  # 256 MB
        del big
    assert mem.peak_mb is None or mem.peak_mb > 100


@pytest.mark.slow
def test_benchmark_on_toy_data(compose):
    train.run(
        compose(["run=t", "stage=train", "stage.epochs=1", "stage.batch_size=16", "stage.input_size=64"])
    )
    common = ["run=t", "stage=benchmark", f"stage.methods=[{','.join(FAST)}]", "stage.limit=8"]
    probes = [
        "stage.faithfulness.images=2",
        "stage.faithfulness.steps=4",
        "stage.sanity.images=1",
        "stage.sanity.depth=2",
        "stage.cost_images=2",
        "stage.gallery.images=2",
    ]
    result = benchmark.run(compose([*common, *probes]))
    out = Path(compose(common).run_dir) / "benchmark"
    assert set(result["methods"]) == set(FAST)
    with open(out / "benchmark.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == FAST and {c.key for c in COLUMNS} <= set(rows[0])
    for r in rows:  # every score exists for every method on the toy data (boxes and masks)
        assert [c.key for c in COLUMNS if r[c.key] == "n/a"] == [], r["method"]
        assert 0.0 <= float(r["deletion_auc"]) <= 1.0 and r["sanity_flagged"] in ("true", "false")
        assert "failed" not in r["status"] and "skipped" not in r["status"]
    md = (out / "benchmark.md").read_text(encoding="utf-8")
    assert md.count("**") >= 2 * 4 and "↑" in md and "↓" in md
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sum(p.startswith("plots/") for p in images) == 6
    assert sum(p.startswith("gallery/") for p in images) == 2 * (1 + len(FAST))
    assert all((out / p).is_file() for p in images)
    manifest = io.read_json(out / "manifest.json")
    assert manifest["stage"] == "benchmark" and set(manifest["status"]) == set(FAST)
    # again without the probes: the maps, boxes and evaluations are reused, the probes' columns are n/a
    off = [
        "stage.faithfulness.images=0",
        "stage.sanity.images=0",
        "stage.cost_images=0",
        "stage.gallery.images=1",
    ]
    again = benchmark.run(compose([*common, *off]))
    assert again["methods"]["eigencam"]["miou"] == result["methods"]["eigencam"]["miou"]
    assert again["methods"]["cam"]["deletion_auc"] is None and again["methods"]["cam"]["ms_per_map"] is None
    assert set(io.read_json(out / "manifest.json")["status"]["cam"].values()) == {"reused"}
    assert "n/a" in (out / "benchmark.md").read_text(encoding="utf-8")
