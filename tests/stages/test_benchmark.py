"""stage=benchmark: its sub-configurations and errors, and the whole stage on the small toy data.

The library it calls (rows, tables, probes, steps, the chain) is tested in tests/benchmark/.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from wsl import io
from wsl.benchmark import COLUMNS
from wsl.errors import UserError
from wsl.layout import RunLayout
from wsl.stages import benchmark, common

FAST = ["cam", "gradcam", "eigencam"]


def strict(constant: str):
    raise ValueError(f"{constant} in results.json: not strict JSON")


def test_sub_configs_swap_groups_and_stay_strict(compose):
    cfg = compose(["stage=benchmark", "cam.target_layer=features.9"])
    sub = common.compose_cam(common.compose_stage(cfg, "cams", split="val", limit=3), "layercam")
    assert sub.stage.name == "cams" and sub.stage.limit == 3 and sub.stage.flip is True
    assert sub.cam.method == "layercam" and sub.cam.target_layer == "features.9"
    assert cfg.stage.name == "benchmark" and cfg.cam.name == "gradcam"  # the original is untouched
    with pytest.raises(ConfigAttributeError):  # struct mode: a typo fails
        sub.stage.limt = 1
    with pytest.raises(KeyError):
        common.compose_stage(cfg, "boxes", limit=3)
    OmegaConf.set_readonly(cfg, True)
    assert OmegaConf.is_readonly(
        common.compose_cam(common.compose_stage(cfg, "eval", task="segmentation"), "cam")
    )


def test_unknown_method_is_one_clear_error(compose):
    with pytest.raises(UserError, match="stage.methods.*gradcom"):
        benchmark.run(compose(["stage=benchmark", "stage.methods=[gradcam,gradcom]"]))


@pytest.mark.slow
def test_benchmark_on_toy_data(trained, compose_at):
    def compose(overrides):
        return compose_at(["num_workers=0", *overrides], trained)

    base = ["stage=benchmark", f"stage.methods=[{','.join(FAST)}]", "stage.limit=8"]
    probes = [
        "stage.faithfulness.images=2",
        "stage.faithfulness.steps=4",
        "stage.sanity.images=1",
        "stage.sanity.depth=2",
        "stage.cost_images=2",
        "stage.gallery.images=2",
    ]
    result = benchmark.run(compose([*base, *probes]))
    lay = RunLayout(compose(base).paths.run_dir)
    out = lay.benchmark()
    assert set(result["methods"]) == set(FAST)
    with open(out / "benchmark.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == FAST and {c.key for c in COLUMNS} <= set(rows[0])
    for r in rows:  # every score exists for every method on the toy data (boxes and masks)
        assert [c.key for c in COLUMNS if r[c.key] == "n/a"] == [], r["method"]
        assert 0.0 <= float(r["deletion_auc"]) <= 1.0 and r["sanity_flagged"] in ("true", "false")
        for c in COLUMNS:  # fractions in the CSV, percent only on display
            assert not c.percent or 0.0 <= float(r[c.key]) <= 1.0, (r["method"], c.key)
        assert "failed" not in r["status"] and "skipped" not in r["status"]
    md = (out / "benchmark.md").read_text(encoding="utf-8")
    assert md.count("**") >= 2 * 4 and "↑" in md and "↓" in md
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sum(p.startswith("plots/") for p in images) == 6
    assert sum(p.startswith("gallery/") for p in images) == 2 * (1 + len(FAST))
    assert all((out / p).is_file() for p in images)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"), parse_constant=strict)
    assert set(results["rows"]) == set(FAST) and results["rows"]["cam"]["boxacc_curve"][0][0] == 0.0
    gt_known = results["rows"]["gradcam"]["gt_known_loc"]
    assert result["methods"]["gradcam"]["gt_known_loc"] == gt_known and 0.0 <= gt_known <= 1.0
    for m in FAST:  # the folders stage=cams, boxes and eval write, with their manifests
        for folder in (lay.cams(m, "val"), lay.boxes(m, "val"), *(lay.eval(m, "val", t) for t in
                       ("localization", "segmentation"))):  # fmt: skip
            assert RunLayout.manifest(folder).is_file(), folder
        loc = io.read_json(RunLayout.metrics(lay.eval(m, "val", "localization")))
        assert loc["gt_known_loc"] == results["rows"][m]["gt_known_loc"]
        assert io.read_json(RunLayout.manifest(lay.eval(m, "val", "segmentation")))["stage"] == "eval"
    for m in FAST:  # bootstrap intervals over images, stored apart (fractions), shown in the tables
        r = results["rows"][m]
        for key in ("gt_known_loc", "maxboxacc_v2", "miou_tuned", "deletion_auc", "average_drop"):
            assert r[f"{key}_low"] <= r[key] <= r[f"{key}_high"], (m, key)
        assert float(rows[FAST.index(m)]["miou_low"]) == pytest.approx(r["miou_low"], abs=1e-6)
    assert re.search(r"\| cam (⚠ )?\| (\*\*)?\d+\.\d(\*\*)? \[\d+\.\d, \d+\.\d\] \|", md)
    # a GAP + linear head: CAM and Grad-CAM give the same maps, and the report says so
    assert ["cam", "gradcam"] in results["meta"]["identical_maps"]["groups"]
    assert "Identical maps and scores: cam and gradcam" in page
    for g in results["gallery"]:  # every labelled class of each image, each map with its scores
        for m in FAST:
            assert len(g["cells"][m]["scores"]) == len(g["classes"]) >= 1
            assert all(
                0.0 <= s["box_iou"] <= 1.0 and 0.0 <= s["mask_iou"] <= 1.0 for s in g["cells"][m]["scores"]
            )
    manifest = io.read_json(out / "manifest.json")
    assert manifest["stage"] == "benchmark" and set(manifest["status"]) == set(FAST)
    # again without the probes: the maps, boxes and evaluations are reused, the probes' columns are n/a
    off = [
        "stage.faithfulness.images=0",
        "stage.sanity.images=0",
        "stage.cost_images=0",
        "stage.gallery.images=1",
    ]
    again = benchmark.run(compose([*base, *off]))
    assert again["methods"]["eigencam"]["miou"] == result["methods"]["eigencam"]["miou"]
    assert again["methods"]["cam"]["deletion_auc"] is None and again["methods"]["cam"]["ms_per_map"] is None
    assert set(io.read_json(out / "manifest.json")["status"]["cam"].values()) == {"reused"}
    assert "n/a" in (out / "benchmark.md").read_text(encoding="utf-8")
