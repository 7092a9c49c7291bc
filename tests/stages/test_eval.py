"""stage=eval (and boxes) on maps of the session's trained run; the prerequisite table through wsl.run."""

from __future__ import annotations

import json

import pytest

from wsl import io
from wsl.errors import UserError
from wsl.evaluation import LocalizationResult, SegmentationResult
from wsl.layout import RunLayout
from wsl.run import run_stage
from wsl.stages import boxes, cams
from wsl.stages import eval as eval_stage


@pytest.fixture
def with_cams(trained, compose_at):
    """The trained run with the maps and boxes of the first 8 val images."""
    cams.run(compose_at(["stage=cams", "num_workers=0", "stage.limit=8"], trained))
    boxes.run(compose_at(["stage=boxes"], trained))
    return trained, RunLayout(trained / "toy-small_cnn")


def test_eval_all_writes_both_tasks_in_fractions(with_cams, compose_at):
    out, lay = with_cams
    res = eval_stage.run(compose_at(["stage=eval"], out))
    assert set(res) == {"localization", "segmentation"}
    for task in res:
        folder = lay.eval("gradcam", "val", task)
        names = {p.name for p in folder.iterdir()}
        assert {"metrics.json", "metrics.md", "manifest.json"} <= names, names
        saved = json.loads((folder / "metrics.json").read_text())
        assert saved["units"] == "fractions in [0, 1]"
    loc = LocalizationResult.from_json(
        json.loads((lay.eval("gradcam", "val", "localization") / "metrics.json").read_text())
    )
    assert loc.images == 8 and loc.missing == 24 - 8
    for v in (loc.gt_known_loc, loc.top1_loc_err, loc.max_box_acc_v2, loc.corloc, loc.coco_ap50, loc.pxap):
        assert 0 <= v <= 1
    seg = SegmentationResult.from_json(res["segmentation"])
    assert seg.cams.images == 8 and 0 <= seg.cams.miou <= seg.cams.miou_tuned <= 1
    assert seg.seeds is None and seg.labels is None  # the run has none


def test_a_missing_input_names_the_command(trained, compose_at):
    with pytest.raises(
        UserError, match="run `python -m wsl.run stage=cams cam=layercam stage.split=val` first"
    ):
        run_stage(compose_at(["stage=boxes", "cam=layercam"], trained))
    with pytest.raises(UserError, match="stage=seeds cam=gradcam stage.split=train"):
        run_stage(compose_at(["stage=sec"], trained))


@pytest.mark.slow
def test_cams_trains_the_missing_classifier_first(compose_at, tmp_path, caplog):
    """The README's promise: stage=cams on a fresh run trains the classifier (default settings) first."""
    cfg = compose_at(["stage=cams", "num_workers=0", "stage.limit=2"], tmp_path)
    with caplog.at_level("INFO"):
        run_stage(cfg)
    assert "running stage=train first" in caplog.text
    lay = RunLayout(tmp_path / "toy-small_cnn")
    assert lay.classifier().is_file() and len(list(lay.cams("gradcam", "val").glob("*.npz"))) == 2
    train = json.loads(RunLayout.manifest(lay.train()).read_text())
    assert train["config"]["stage"]["epochs"] == 12  # conf/stage/train.yaml's default, not a copy of cams'


def test_reruns_with_nothing_to_do_keep_their_results(with_cams, compose_at):
    """boxes: an up-to-date boxes.json is kept unless stage.overwrite; cams: a re-run that wrote nothing
    keeps the CAM mIoU it had (no rescoring), and says it skipped everything."""
    out, lay = with_cams
    boxes_file = lay.boxes_file("gradcam", "val")
    stamp = boxes_file.stat().st_mtime_ns
    assert boxes.run(compose_at(["stage=boxes"], out))["images"] == 8
    assert boxes_file.stat().st_mtime_ns == stamp
    boxes.run(compose_at(["stage=boxes", "stage.overwrite=true"], out))
    assert boxes_file.stat().st_mtime_ns > stamp
    boxes.run(compose_at(["stage=boxes", "stage.threshold=0.3"], out))  # other options: made again
    assert io.read_json(RunLayout.manifest(boxes_file.parent))["config"]["stage"]["threshold"] == 0.3
    manifest = RunLayout.manifest(lay.cams("gradcam", "val"))
    before = io.read_json(manifest)
    again = cams.run(compose_at(["stage=cams", "num_workers=0", "stage.limit=8"], out))
    after = io.read_json(manifest)
    assert again["images"] == 0 and after["counts"]["skipped"] == 8
    assert after["cam_miou"] == before["cam_miou"] == again["cam_miou"]
