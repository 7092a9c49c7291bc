"""wsl.evaluation's segmentation scoring: CAM masks (IRN protocol), seeds and pseudo-labels, on a hand-made
two-image dataset whose mIoU is computed by hand and on the toy dataset against the metrics called
directly; merging, missing and corrupt files, metrics.json and the saved files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from wsl import io
from wsl.evaluation import (
    CamMaskEvaluator,
    LabelEvaluator,
    SeedCoverageEvaluator,
    SeedEvaluator,
    SegmentationResult,
    evaluate_cam_masks,
    evaluate_segmentation,
    save_segmentation,
    score_labels,
    score_seeds,
    seed_coverage,
    sweep_thresholds,
)
from wsl.metrics import ConfusionAccumulator, ThresholdSweep
from wsl.segmentation import cam_to_mask

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
def tiny(make_voc, tmp_path):
    """The two-image dataset and its CAM folder (im1 also holds a map of the unlabelled class b)."""
    names = ["a", "b"]
    ds = make_voc({i: (_rows(g), [(names[k], (0, 0, 5, 3)) for k in MAPS[i]]) for i, g in GT.items()}, names)
    cams = tmp_path / "cams"
    for image_id, maps in MAPS.items():
        classes = list(maps) + [1 - list(maps)[0]] * (len(maps) == 1)  # + an unlabelled, predicted class
        stack = [_rows(maps.get(k, [1.0] * 6), np.float32) for k in classes]
        io.save_cams(cams / f"{image_id}.npz", np.array(classes), np.stack(stack), np.zeros(2), (4, 6))
    return ds, cams, tmp_path


def test_cam_miou_by_hand_and_sweep_consistent(tiny):
    ds, cams, tmp = tiny
    c = evaluate_cam_masks(ds, cams)
    assert c.miou == pytest.approx(HAND_MIOU, abs=1e-12)
    assert c.per_class_iou == pytest.approx({"background": 0.4, "a": 4 / 6, "b": 2 / 3}, abs=1e-12)
    at_fixed = int(np.flatnonzero(np.isclose(c.sweep_thresholds, 0.15))[0])
    assert c.sweep_miou[at_fixed] == pytest.approx(c.miou, abs=1e-12)
    assert c.miou_tuned >= c.miou and c.threshold == 0.15
    np.testing.assert_array_equal(c.sweep_thresholds, sweep_thresholds())
    # The tuned figure agrees with masks recomputed from scratch at the best threshold.
    conf = np.zeros((3, 3), np.int64)
    for image_id, maps in MAPS.items():
        stack = np.stack([_rows(r, np.float32) for r in maps.values()]).astype(np.float16).astype(np.float32)
        pred = cam_to_mask(stack, np.array(list(maps)) + 1, c.best_threshold)
        keep = _rows(GT[image_id]) != 255
        np.add.at(conf, (_rows(GT[image_id])[keep], pred[keep]), 1)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    assert c.miou_tuned == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert (c.images, c.missing, c.failed, c.missing_maps) == (2, 0, 0, 0)

    result = evaluate_segmentation(ds, cams, cam="fake")
    assert result.seeds is None and result.labels is None and result.cams.miou == c.miou
    out = tmp / "eval"
    save_segmentation(out, result)
    m = json.loads((out / "metrics.json").read_text())
    assert m["best_threshold"] == c.best_threshold and m["miou"] == c.miou and m["cams"]["images"] == 2
    assert "ground truth" in m["threshold_tuned_on"] and m["units"] == "fractions in [0, 1]"
    assert "tuned on" in (out / "metrics.md").read_text() and (out / "miou_vs_threshold.png").stat().st_size


def test_seeds_and_labels_sections(tiny):
    ds, cams, tmp = tiny
    for sub, rows in (("seeds", SEEDS), ("labels", LABELS)):
        for image_id, row in rows.items():
            io.write_label_png(tmp / sub / f"{image_id}.png", _rows(row))
    s = score_seeds(ds, tmp / "seeds")
    assert s.coverage == pytest.approx(9 / 12)  # labelled seed pixels / all pixels
    assert s.precision == pytest.approx({"background": 1.0, "a": 0.8, "b": 1.0})
    assert s.mean_precision == pytest.approx((1 + 0.8 + 1) / 3)
    lab = score_labels(ds, tmp / "labels")
    assert lab.miou == pytest.approx(1.0) and lab.images == 2
    # A missing pseudo-label is counted, never scored as something else.
    (tmp / "labels" / "im2.png").unlink()
    r = evaluate_segmentation(ds, cams, tmp / "seeds", tmp / "labels", cam="fake")
    assert (r.labels.images, r.labels.missing) == (1, 1)
    assert r.labels.per_class_iou["b"] is None and r.seeds.coverage == s.coverage
    save_segmentation(tmp / "eval", r)
    assert "pseudo-labels" in (tmp / "eval" / "metrics.md").read_text()
    assert evaluate_segmentation(ds, cams, tmp / "absent", None).seeds is None


def test_missing_cam_file_is_counted(tiny):
    ds, cams, _ = tiny
    (cams / "im2.npz").unlink()
    c = evaluate_cam_masks(ds, cams)
    assert (c.images, c.missing) == (1, 1)
    (cams / "im1.npz").unlink()
    with pytest.raises(ValueError, match="no CAM file could be scored"):
        evaluate_cam_masks(ds, cams)


def test_sweep_spec():
    assert sweep_thresholds().tolist() == pytest.approx(np.arange(61) / 100)
    assert sweep_thresholds(0.1, 0.3, 0.1).tolist() == pytest.approx([0.1, 0.2, 0.3])
    for bad in ((0.0, 0.6, 0.0), (0.5, 0.2, 0.1), (0.0, 0.6, -0.1)):
        with pytest.raises(ValueError, match="step > 0"):
            sweep_thresholds(*bad)


def test_toy_perfect_maps_and_graded_maps_against_the_metrics(toy_ds, write_gt_cams, maps_of, tmp_path):
    perfect = evaluate_cam_masks(toy_ds, write_gt_cams(tmp_path / "perfect", toy_ds))
    assert perfect.miou == 1.0 and perfect.miou_tuned == 1.0 and perfect.best_threshold == 0.0
    assert set(perfect.per_class_iou.values()) == {1.0} and perfect.images == len(toy_ds)

    c = evaluate_cam_masks(toy_ds, write_gt_cams(tmp_path / "blurred", toy_ds, blur=15), threshold=0.3)
    fixed, sweep = ConfusionAccumulator(7), ThresholdSweep(7, sweep_thresholds())
    for i in range(len(toy_ds)):
        classes, maps = maps_of(toy_ds, i, blur=15)
        maps = maps.astype(np.float16).astype(np.float32)  # as stored
        maps = maps / maps.max(axis=(1, 2), keepdims=True)  # renormalised at image size
        gt = toy_ds.load_mask(i)
        fixed.update(gt, cam_to_mask(maps, classes + 1, 0.3))
        sweep.update(maps, classes + 1, gt)
    ref, ref_sweep = fixed.compute(), sweep.compute()
    assert c.miou == ref.miou and 0.3 < c.miou < 1.0
    assert list(c.per_class_iou.values()) == ref.per_class_iou.tolist()
    np.testing.assert_array_equal(c.sweep_miou, ref_sweep.miou)
    assert (c.miou_tuned, c.best_threshold) == (ref_sweep.best_miou, ref_sweep.best_threshold)


def _write_gt_labels(ds, folder, void_to_background: bool):
    for i in range(len(ds)):
        mask = ds.load_mask(i)
        io.write_label_png(
            folder / f"{ds.ids[i]}.png", np.where(mask == 255, 0, mask) if void_to_background else mask
        )
    return folder


def test_toy_seeds_and_labels_from_ground_truth(toy_ds, tmp_path):
    s = score_seeds(toy_ds, _write_gt_labels(toy_ds, tmp_path / "seeds", False))
    void = sum(int((toy_ds.load_mask(i) == 255).sum()) for i in range(len(toy_ds)))
    total = sum(toy_ds.load_mask(i).size for i in range(len(toy_ds)))
    assert s.miou == 1.0 and s.mean_precision == 1.0
    assert s.coverage == pytest.approx((total - void) / total, abs=1e-15)  # the GT's void pixels: no seed
    lab = score_labels(toy_ds, _write_gt_labels(toy_ds, tmp_path / "labels", True))
    assert lab.miou == 1.0 and (lab.images, lab.missing, lab.failed) == (len(toy_ds), 0, 0)
    # Without ground truth: the coverage alone, also merged from shards.
    assert seed_coverage(toy_ds, tmp_path / "seeds") == s.coverage
    halves = [SeedCoverageEvaluator(toy_ds), SeedCoverageEvaluator(toy_ds)]
    for i in range(len(toy_ds)):
        halves[i % 2].update(i, io.read_label_png(tmp_path / "seeds" / f"{toy_ds.ids[i]}.png"))
    merged = pickle.loads(pickle.dumps(halves[0])).merge(halves[1]).compute()
    assert (merged.coverage, merged.images) == (s.coverage, len(toy_ds))
    (tmp_path / "seeds" / f"{toy_ds.ids[0]}.png").unlink()
    assert seed_coverage(toy_ds, tmp_path / "seeds", indices=[0]) is None


def test_merge_of_two_halves_equals_one_pass(toy_ds, write_gt_cams, tmp_path, same_result):
    cams = write_gt_cams(tmp_path / "cams", toy_ds, blur=15)
    seeds = _write_gt_labels(toy_ds, tmp_path / "seeds", False)
    (seeds / f"{toy_ds.ids[3]}.png").unlink()
    whole = evaluate_segmentation(toy_ds, cams, seeds, seeds, cam="x", threshold=0.2)
    for evaluator, folder, read in (
        (lambda: CamMaskEvaluator(toy_ds, 0.2), cams, io.load_cams),
        (lambda: SeedEvaluator(toy_ds), seeds, io.read_label_png),
    ):
        halves = [evaluator(), evaluator()]
        for i in range(len(toy_ds)):
            path = folder / f"{toy_ds.ids[i]}{'.npz' if folder == cams else '.png'}"
            if path.is_file():
                halves[i % 2].update(i, read(path))
            else:
                halves[i % 2].add_missing()
        merged = pickle.loads(pickle.dumps(halves[0])).merge(pickle.loads(pickle.dumps(halves[1])))
        assert merged.ds is None  # the dataset never travels
        same_result(merged.compute(), whole.cams if folder == cams else whole.seeds)

    # The same through `indices` + `reduce` (what a sharded stage does with wsl.dist.merge_all).
    def reduce_with_odd(acc):
        """Merge with the evaluator of the odd images, both through pickle (as all_gather_object does)."""
        is_cam = isinstance(acc, CamMaskEvaluator)
        other = CamMaskEvaluator(toy_ds, 0.2) if is_cam else type(acc)(toy_ds)
        folder, suffix, read = (cams, ".npz", io.load_cams) if is_cam else (seeds, ".png", io.read_label_png)
        for i in range(1, len(toy_ds), 2):
            path = folder / f"{toy_ds.ids[i]}{suffix}"
            try:
                other.update(i, read(path)) if path.is_file() else other.add_missing()
            except ValueError as e:  # seeds scored as label maps: 255 is an error
                other.add_failed(toy_ds.ids[i], f"{path}: {e}")
        return pickle.loads(pickle.dumps(acc)).merge(pickle.loads(pickle.dumps(other)))

    even = range(0, len(toy_ds), 2)
    sharded = evaluate_segmentation(
        toy_ds, cams, seeds, seeds, cam="x", threshold=0.2, indices=even, reduce=reduce_with_odd
    )
    same_result(sharded, whole)


def test_merge_rejects_other_settings(toy_ds, tiny):
    ds, _, _ = tiny
    with pytest.raises(ValueError, match="threshold"):
        CamMaskEvaluator(toy_ds, 0.15).merge(CamMaskEvaluator(toy_ds, 0.2))
    with pytest.raises(ValueError, match="thresholds"):
        CamMaskEvaluator(toy_ds).merge(CamMaskEvaluator(toy_ds, thresholds=[0.1, 0.2]))
    with pytest.raises(ValueError, match="names"):
        SeedEvaluator(toy_ds).merge(SeedEvaluator(ds))
    with pytest.raises(TypeError):
        SeedEvaluator(toy_ds).merge(LabelEvaluator(toy_ds))


def test_missing_corrupt_and_inconsistent_files_are_counted(toy_ds, write_gt_cams, tmp_path, caplog):
    cams = write_gt_cams(tmp_path / "cams", toy_ds)
    ids = toy_ds.ids
    (cams / f"{ids[0]}.npz").unlink()
    (cams / f"{ids[1]}.npz").write_bytes(b"\x00" * 10)
    rec = io.load_cams(cams / f"{ids[2]}.npz")
    h, w = (int(v) for v in rec["image_size"])
    io.save_cams(cams / f"{ids[2]}.npz", rec["classes"], rec["maps"], rec["logits"], (h, w + 3))
    rec = io.load_cams(cams / f"{ids[3]}.npz")
    io.save_cams(
        cams / f"{ids[3]}.npz", rec["classes"][1:], rec["maps"][1:], rec["logits"], rec["image_size"]
    )
    with caplog.at_level("WARNING"):
        c = evaluate_cam_masks(toy_ds, cams)
    assert (c.images, c.missing, c.failed, c.missing_maps) == (len(ids) - 3, 1, 2, 1)
    assert sum(m.startswith("skipping ") for m in caplog.messages) == 2  # one line per item, with its file
    assert any("no map for labelled classes" in m for m in caplog.messages)

    labels = _write_gt_labels(toy_ds, tmp_path / "labels", True)
    (labels / f"{ids[0]}.png").unlink()
    io.write_label_png(labels / f"{ids[1]}.png", np.full((5, 5), 1, np.uint8))  # wrong shape
    io.write_label_png(labels / f"{ids[2]}.png", toy_ds.load_mask(2))  # a 255 in a label map
    io.write_image(labels / f"{ids[3]}.png", np.zeros((*toy_ds.load_mask(3).shape, 3), np.uint8))  # RGB
    io.write_label_png(labels / f"{ids[4]}.png", np.full(toy_ds.load_mask(4).shape, 9, np.uint8))  # no class
    (labels / f"{ids[5]}.png").write_bytes(b"garbage")
    lab = score_labels(toy_ds, labels)
    assert (lab.images, lab.missing, lab.failed) == (len(ids) - 6, 1, 5) and lab.miou == 1.0


def test_json_round_trip(tiny, same_result):
    ds, cams, tmp = tiny
    for sub, rows in (("seeds", SEEDS), ("labels", LABELS)):
        for image_id, row in rows.items():
            io.write_label_png(tmp / sub / f"{image_id}.png", _rows(row))
    (tmp / "labels" / "im2.png").unlink()  # a class never seen: None in JSON
    for result in (
        evaluate_segmentation(ds, cams, tmp / "seeds", tmp / "labels", cam="fake"),
        evaluate_segmentation(ds, None, tmp / "seeds", None, cam="fake"),
    ):
        d = json.loads(json.dumps(result.to_json(), allow_nan=False))  # strict JSON
        assert d["units"] == "fractions in [0, 1]" and d["task"] == "segmentation" and d["split"] == "train"
        same_result(SegmentationResult.from_json(d), result)
        save_segmentation(tmp / "out", result)
        assert io.read_json(tmp / "out" / "metrics.json") == d
    assert d["cams"] is None and d["labels"] is None and d["seeds"]["images"] == 2
    with pytest.raises(ValueError, match="units"):
        SegmentationResult.from_json({k: v for k, v in d.items() if k != "units"})
