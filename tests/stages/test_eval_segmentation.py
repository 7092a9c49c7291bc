"""The segmentation evaluator on a hand-made two-image dataset whose mIoU is computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from wsl import io
from wsl.run import CONF_DIR
from wsl.segmentation import cam_to_mask
from wsl.stages.eval_segmentation import evaluate_segmentation, sweep_thresholds

# Two 4 x 6 images, classes a (1) and b (2); every row of an image is the same.
GT = {"im1": [1, 1, 1, 0, 0, 0], "im2": [2, 2, 2, 1, 1, 255]}
MAPS = {  # (class index, row of the max-normalised map); image_labels follow from the keys
    "im1": {0: [1.0, 0.5, 0.1, 0.3, 0.05, 0.0]},
    "im2": {0: [0.0, 0.0, 0.2, 1.0, 0.6, 0.9], 1: [1.0, 0.1, 0.5, 0.0, 0.0, 0.0]},
}
# At background 0.15: im1 -> [1, 1, 0, 1, 0, 0]; im2 -> [2, 0, 2, 1, 1, (void)]. Per row the confusion is
# [[2, 1, 0], [1, 4, 0], [1, 0, 2]]: IoU 2/5, 4/6, 2/3.
HAND_MIOU = (2 / 5 + 4 / 6 + 2 / 3) / 3
SEEDS = {"im1": [1, 1, 255, 255, 0, 0], "im2": [2, 255, 1, 1, 1, 2]}
LABELS = {"im1": [1, 1, 1, 0, 0, 0], "im2": [2, 2, 2, 1, 1, 0]}


def _rows(row: list, dtype=np.uint8) -> np.ndarray:
    return np.tile(np.asarray(row, dtype=dtype), (4, 1))


@pytest.fixture
def tiny(tmp_path):
    """A VOC-layout dataset of two images, fake CAM files of run `t`, and the composed config."""
    root = tmp_path / "VOC2012"
    names = ["a", "b"]
    for image_id, gt in GT.items():
        io.write_image(root / "JPEGImages" / f"{image_id}.jpg", np.zeros((4, 6, 3), np.uint8))
        io.write_label_png(root / "SegmentationClass" / f"{image_id}.png", _rows(gt))
        objects = [{"name": names[k], "bbox": (0, 0, 5, 3)} for k in MAPS[image_id]]
        io.write_voc_xml(root / "Annotations" / f"{image_id}.xml", image_id, (4, 6), objects)
    io.write_text(root / "ImageSets" / "Segmentation" / "train.txt", "im1\nim2\n")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "dataset=voc",
                f"dataset.loader.root={root}",
                "dataset.name=tiny",
                "dataset.num_classes=2",
                "dataset.class_names=[a,b]",
                f"paths.output_root={tmp_path / 'out'}",
                "run=t",
                "stage=eval",
            ],
        )
    cams = tmp_path / "out" / "t" / "cams" / cfg.cam.name / "train"
    for image_id, maps in MAPS.items():
        classes = list(maps) + [1 - list(maps)[0]] * (len(maps) == 1)  # + an unlabelled, predicted class
        stack = [_rows(maps.get(k, [1.0] * 6), np.float32) for k in classes]
        io.save_cams(cams / f"{image_id}.npz", np.array(classes), np.stack(stack), np.zeros(2), (4, 6))
    io.write_json(cams / "manifest.json", {})
    return cfg, tmp_path / "out" / "t"


def test_cam_miou_by_hand_and_sweep_consistent(tiny, tmp_path):
    cfg, run = tiny
    out = tmp_path / "eval"
    m = evaluate_segmentation(cfg, "train", out)
    assert m["miou"] == pytest.approx(HAND_MIOU, abs=1e-12)
    assert m["per_class_iou"] == pytest.approx({"background": 0.4, "a": 4 / 6, "b": 2 / 3}, abs=1e-12)
    t = np.asarray(m["sweep"]["thresholds"])
    at_fixed = int(np.flatnonzero(np.isclose(t, 0.15))[0])
    assert m["sweep"]["miou"][at_fixed] == pytest.approx(m["miou"], abs=1e-12)
    assert m["miou_tuned"] >= m["miou"] and "ground truth" in m["threshold_tuned_on"]
    # The tuned figure agrees with masks recomputed from scratch at the best threshold.
    conf = np.zeros((3, 3), np.int64)
    for image_id, maps in MAPS.items():
        stack = np.stack([_rows(r, np.float32) for r in maps.values()]).astype(np.float16).astype(np.float32)
        pred = cam_to_mask(stack, np.array(list(maps)) + 1, m["best_threshold"])
        keep = _rows(GT[image_id]) != 255
        np.add.at(conf, (_rows(GT[image_id])[keep], pred[keep]), 1)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    assert m["miou_tuned"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert m["seeds"] is None and m["labels"] is None and m["cams"]["images"] == 2
    assert json.loads((out / "metrics.json").read_text())["best_threshold"] == m["best_threshold"]
    assert "tuned on" in (out / "metrics.md").read_text() and (out / "miou_vs_threshold.png").stat().st_size


def test_seeds_and_labels_sections(tiny, tmp_path):
    cfg, run = tiny
    for sub, rows in (("seeds", SEEDS), ("labels", LABELS)):
        for image_id, row in rows.items():
            io.write_label_png(run / sub / cfg.cam.name / "train" / f"{image_id}.png", _rows(row))
    m = evaluate_segmentation(cfg, "train", tmp_path / "eval")
    s = m["seeds"]
    assert s["coverage"] == pytest.approx(8 / 11) and s["labelled_fraction"] == pytest.approx(9 / 12)
    assert s["precision"] == pytest.approx({"background": 1.0, "a": 0.8, "b": 1.0})
    assert s["mean_precision"] == pytest.approx((1 + 0.8 + 1) / 3)
    assert m["labels"]["miou"] == pytest.approx(1.0) and m["labels"]["images"] == 2
    # A missing pseudo-label is counted, never scored as something else.
    (run / "labels" / cfg.cam.name / "train" / "im2.png").unlink()
    m = evaluate_segmentation(cfg, "train", tmp_path / "eval")
    assert (m["labels"]["images"], m["labels"]["missing"]) == (1, 1)
    assert m["labels"]["per_class_iou"]["b"] is None
    assert "pseudo-labels" in (tmp_path / "eval" / "metrics.md").read_text()


def test_missing_cam_file_is_counted(tiny, tmp_path):
    cfg, run = tiny
    (run / "cams" / cfg.cam.name / "train" / "im2.npz").unlink()
    m = evaluate_segmentation(cfg, "train", tmp_path / "eval")
    assert (m["cams"]["images"], m["cams"]["missing"]) == (1, 1)


def test_sweep_spec():
    assert sweep_thresholds(OmegaConf.create({})).tolist() == pytest.approx(np.arange(61) / 100)
    st = OmegaConf.create({"sweep_start": 0.1, "sweep_stop": 0.3, "sweep_step": 0.1})
    assert sweep_thresholds(st).tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert sweep_thresholds(OmegaConf.create({"sweep": [0.15, 0.3]})).tolist() == [0.15, 0.3]


def test_through_stage_eval(tiny):
    """stage=eval stage.task=segmentation calls the evaluator and writes eval/<cam>/<split>/segmentation/."""
    from wsl.stages import eval as eval_stage

    cfg, run = tiny
    cfg.stage.task, cfg.stage.split = "segmentation", "train"
    m = eval_stage.run(cfg)["segmentation"]
    assert m["miou"] == pytest.approx(HAND_MIOU, abs=1e-12) and m["images"] == 2
    folder = run / "eval" / cfg.cam.name / "train" / "segmentation"
    assert {"metrics.json", "metrics.md", "miou_vs_threshold.png", "manifest.json"} <= {
        p.name for p in folder.iterdir()
    }
