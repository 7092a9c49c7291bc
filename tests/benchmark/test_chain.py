"""wsl.benchmark.run_chain on the small toy data with an untrained classifier: makes, reuses, reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wsl import io
from wsl.benchmark import ChainSettings, run_chain
from wsl.cam import CamSettings
from wsl.evaluation import CamMaskResult, LocalizationResult, sweep_thresholds
from wsl.layout import RunLayout
from wsl.models.classifier import build_classifier
from wsl.stages import common

STEPS = ("cams", "boxes", "eval/localization", "eval/segmentation")


@pytest.fixture
def toy(compose):
    cfg = compose(["stage=benchmark"])
    ds = common.build_dataset(cfg, "val")
    torch.manual_seed(0)
    model = build_classifier("small_cnn", ds.num_classes).eval()
    cams = CamSettings(method="gradcam", target_layer="features", flip=False, batch_size=4, top_k=1)
    settings = ChainSettings(cams, list(cfg.dataset.mean), list(cfg.dataset.std), limit=3,
                             thresholds=sweep_thresholds(0.0, 0.3, 0.1))  # fmt: skip
    return ds, model, settings


def test_chain_makes_then_reuses_what_is_on_disk(toy, tmp_path):
    ds, model, settings = toy
    lay, cpu, written = RunLayout(tmp_path / "run"), torch.device("cpu"), []

    def manifest(step, folder, started, **counts):
        written.append((step, folder))
        io.write_json(RunLayout.manifest(folder), {"stage": step, **counts})

    res = run_chain(ds, lay, "gradcam", "val", model, cpu, settings, manifest)
    assert res.status == dict.fromkeys(STEPS, "ran")
    assert isinstance(res.localization, LocalizationResult) and isinstance(res.segmentation, CamMaskResult)
    assert res.localization.images == 3 and res.localization.missing == len(ds) - 3
    assert res.segmentation.images == 3 and 0.0 <= res.segmentation.miou <= 1.0
    # bootstrap intervals over the 3 images, from per-image counts that give back the evaluators' values
    keys = (
        "gt_known_loc",
        "top1_loc_err",
        "corloc",
        "pointing_game",
        "maxboxacc_v2",
        "pxap",
        "miou",
        "miou_tuned",
    )
    assert {f"{k}_{end}" for k in keys for end in ("low", "high")} == set(res.intervals)
    assert res.intervals["miou_low"] <= res.segmentation.miou <= res.intervals["miou_high"]
    assert (
        res.intervals["maxboxacc_v2_low"]
        <= res.localization.max_box_acc_v2
        <= res.intervals["maxboxacc_v2_high"]
    )
    assert written == [("cams", lay.cams("gradcam", "val")), ("boxes", lay.boxes("gradcam", "val")),
                       ("eval/localization", lay.eval("gradcam", "val", "localization")),
                       ("eval/segmentation", lay.eval("gradcam", "val", "segmentation"))]  # fmt: skip
    assert io.read_json(RunLayout.manifest(lay.cams("gradcam", "val")))["done"] == 3
    assert lay.boxes_file("gradcam", "val").is_file()
    for task in ("localization", "segmentation"):  # the folders of stage=eval
        assert {"metrics.json", "metrics.md"} <= {p.name for p in lay.eval("gradcam", "val", task).iterdir()}
    again = run_chain(ds, lay, "gradcam", "val", model, cpu, settings, manifest)
    assert again.status == dict.fromkeys(STEPS, "reused") and len(written) == 4
    assert again.localization.gt_known_loc == res.localization.gt_known_loc
    assert again.segmentation.miou == res.segmentation.miou
    over = run_chain(
        ds, lay, "gradcam", "val", model, cpu, dataclasses.replace(settings, overwrite=True), manifest
    )
    assert over.status == dict.fromkeys(STEPS, "ran") and len(written) == 8


def test_a_failing_method_is_reported_not_raised(toy, tmp_path):
    ds, model, settings = toy
    bad = dataclasses.replace(settings, cams=dataclasses.replace(settings.cams, target_layer="no.such.layer"))
    res = run_chain(
        ds, RunLayout(tmp_path), "gradcam", "val", model, torch.device("cpu"), bad, lambda *a, **k: None
    )
    assert res.status["cams"].startswith("failed: ") and res.localization is None and res.segmentation is None
    assert res.status["boxes"] == res.status["eval/segmentation"] == "skipped: cams did not run"
