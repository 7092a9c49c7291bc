"""wsl.evaluation's localization scoring: a hand-made dataset with known scores, the toy dataset against the
metric functions called directly, merging, missing and corrupt files, metrics.json and the saved files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from wsl import io
from wsl.cam.stored import load_full
from wsl.evaluation import (
    LocalizationEvaluator,
    LocalizationProtocol,
    LocalizationResult,
    MissingMapError,
    coco_box_ap,
    evaluate_localization,
    save_localization,
)
from wsl.metrics import LocalizationAccumulator, MaxBoxAccumulator, PxAPAccumulator
from wsl.metrics.wsol import default_thresholds

H, W = 40, 48
NAMES = ["a", "b"]
# id -> [(class, GT box, map box, logits)]: the map is 0.9 on its box, 1.0 at the box's top-left pixel.
HAND = {
    "im1": ([(0, (2, 2, 9, 9), (2, 2, 9, 9))], [2.0, 0.0]),
    "im2": ([(0, (12, 4, 21, 15), (12, 4, 21, 15)), (1, (1, 1, 6, 8), (1, 1, 6, 8))], [0.0, 3.0]),
    "im3": ([(1, (4, 6, 15, 17), (36, 28, 46, 38))], [5.0, 1.0]),  # b's map is far away; top-1 is a
}


def _fill(a, box, value):
    x0, y0, x1, y1 = box
    a[y0 : y1 + 1, x0 : x1 + 1] = value


@pytest.fixture
def hand(make_voc, tmp_path):
    """The dataset of HAND (masks: the filled GT boxes, a void column at x = 47) and its CAM folder."""
    items = {}
    for image_id, (objects, _) in HAND.items():
        mask = np.zeros((H, W), np.uint8)
        for c, gt, _ in objects:
            _fill(mask, gt, c + 1)
        mask[:, W - 1] = 255
        items[image_id] = (mask, [(NAMES[c], gt) for c, gt, _ in objects])
    ds = make_voc(items, NAMES)
    cams = tmp_path / "cams"
    for image_id, (objects, logits) in HAND.items():
        maps = np.zeros((len(objects), H, W), np.float32)
        for k, (_, _, box) in enumerate(objects):
            _fill(maps[k], box, 0.9)
            maps[k, box[1], box[0]] = 1.0
        io.save_cams(cams / f"{image_id}.npz", [c for c, _, _ in objects], maps, np.array(logits), (H, W))
    return ds, cams


def test_hand_made_scores(hand):
    ds, cams = hand
    r = evaluate_localization(ds, cams)
    assert (r.images, r.pairs, r.skipped_images, r.missing, r.failed) == (3, 4, 0, 0, 0)
    # im3: top-1 class a is not in the label, and b's box is wrong: an error for top-1 and top-5.
    assert r.top1_loc_err == pytest.approx(1 / 3) and r.top5_loc_err == pytest.approx(1 / 3)
    assert r.gt_known_loc == 0.75 and r.pointing_game == 0.75  # im3's maximum is 23.7 px from its box
    assert r.corloc_per_class == {"a": 1.0, "b": 0.5} and r.corloc == 0.75
    # BoxAcc: the whole box up to tau = 0.89 (0.9 * 255 = 229 > int(0.89 * 255)), then one pixel.
    np.testing.assert_array_equal(r.box_acc_v1, [0.75] * 90 + [0.0] * 10)
    assert (r.max_box_acc, r.max_box_acc_threshold) == (0.75, 0.0)
    assert r.max_box_acc_v2 == 0.75 and r.max_box_acc_v2_per_iou == {"0.3": 0.75, "0.5": 0.75, "0.7": 0.75}
    assert r.max_box_acc_v2_thresholds == {"0.3": 0.0, "0.5": 0.0, "0.7": 0.0}
    # PxAP by hand: 376 positive pixels (64 + 120 + 48 + 144), 4 * (40 * 47) - 376 = 7144 negatives.
    # From the top: 3 tp + 1 fp at 1.0; 232 tp + 121 fp down to 0.9; everything at 0.
    expected = (232 / 353) * (229 / 376) + (376 / 7520) * (144 / 376)
    assert r.pxap == pytest.approx(expected, abs=1e-12)
    assert r.pr_recall[-1] == 1.0 and r.coco_ap is None and r.coco_ap50 is None
    assert r.thresholds.shape == (100,) and r.protocol == LocalizationProtocol()


def test_coco_box_ap_of_a_boxes_file(hand, tmp_path):
    ds, cams = hand
    results = [
        {
            "image_id": ds.coco_image_id(i),
            "category_id": ds.category_ids[int(k)],
            "bbox": [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)],
            "score": 1.0,
        }
        for i in range(len(ds))
        for (x0, y0, x1, y1), k in zip(ds.load_boxes(i)["boxes"], ds.load_boxes(i)["labels"])
    ]
    io.write_json(tmp_path / "boxes.json", results)
    r = evaluate_localization(ds, cams, tmp_path / "boxes.json")
    assert (r.coco_ap, r.coco_ap50) == (1.0, 1.0)  # fractions
    io.write_json(tmp_path / "empty.json", [])
    assert coco_box_ap(ds, tmp_path / "empty.json", [1, 2, 3]) == (0.0, 0.0)
    io.write_json(
        tmp_path / "shifted.json", [dict(d, bbox=[d["bbox"][0] + 3, *d["bbox"][1:]]) for d in results]
    )
    ap, ap50 = coco_box_ap(ds, tmp_path / "shifted.json", [ds.coco_image_id(i) for i in range(len(ds))])
    assert 0.0 < ap < ap50 <= 1.0
    assert evaluate_localization(ds, cams, tmp_path / "absent.json").coco_ap is None


def _direct(ds, folder, indices):
    """The metric accumulators of wsl.metrics fed by hand: the reference of the evaluator."""
    protocol = LocalizationProtocol()
    taus = default_thresholds(protocol.box_acc_step)
    loc = LocalizationAccumulator(
        protocol.loc_threshold, protocol.iou_threshold, 5, protocol.pointing_tolerance
    )
    v1 = MaxBoxAccumulator(taus, (protocol.iou_threshold,))
    v2 = MaxBoxAccumulator(taus, protocol.v2_ious, multi_contour=True)
    px = PxAPAccumulator(taus)
    for i in indices:
        rec = load_full(folder / f"{ds.ids[i]}.npz")
        maps = dict(zip(rec["classes"].tolist(), rec["full"]))
        gt, mask = ds.load_boxes(i), ds.load_mask(i)
        loc.update(maps, rec["logits"], gt["boxes"], gt["labels"], gt["difficult"])
        for c, m in maps.items():
            v1.update(m, gt["boxes"][gt["labels"] == c])
            v2.update(m, gt["boxes"][gt["labels"] == c])
            px.update(m, np.where(mask == 255, 255, (mask == c + 1).astype(np.uint8)))
    return loc.compute(), v1.compute(), v2.compute(), px.compute()


def test_perfect_maps_on_toy_and_graded_maps_against_the_metric_functions(toy_ds, write_gt_cams, tmp_path):
    perfect = evaluate_localization(toy_ds, write_gt_cams(tmp_path / "perfect", toy_ds))
    assert perfect.gt_known_loc == 1.0 and perfect.top1_loc_err == 0.0 and perfect.corloc == 1.0
    assert perfect.max_box_acc == 1.0 and perfect.max_box_acc_v2 == 1.0 and perfect.pointing_game == 1.0
    assert perfect.pxap == 0.0  # wsolevaluation's PR curve starts at full recall for a binary map

    folder = write_gt_cams(tmp_path / "blurred", toy_ds, blur=31)
    r = evaluate_localization(toy_ds, folder)
    loc, v1, v2, px = _direct(toy_ds, folder, range(len(toy_ds)))
    assert (r.images, r.pairs, r.skipped_images) == (loc.images, loc.pairs, loc.skipped_images)
    assert (r.top1_loc_err, r.top5_loc_err, r.gt_known_loc) == (
        loc.top1_loc_err,
        loc.topk_loc_err,
        loc.gt_known_loc,
    )
    assert (r.corloc, r.pointing_game) == (loc.corloc, loc.pointing_game)
    assert r.corloc_per_class == {toy_ds.class_names[c]: v for c, v in loc.corloc_per_class.items()}
    assert (r.max_box_acc, r.max_box_acc_threshold) == (v1.max_box_acc, v1.best_threshold[0.5])
    np.testing.assert_array_equal(r.box_acc_v1, v1.box_acc[0.5])
    assert r.max_box_acc_v2 == v2.max_box_acc
    assert r.max_box_acc_v2_per_iou == {str(d): v for d, v in v2.best_acc.items()}
    for d in (0.3, 0.5, 0.7):
        np.testing.assert_array_equal(r.box_acc_v2[str(d)], v2.box_acc[d])
    assert r.pxap == px.pxap and 0.5 < r.pxap < 1.0
    np.testing.assert_array_equal(r.pr_precision, px.precision)
    assert all(0.0 <= v <= 1.0 for v in (r.gt_known_loc, r.max_box_acc_v2, r.pxap, r.corloc))


def test_merge_of_two_halves_equals_one_pass(toy_ds, write_gt_cams, tmp_path, same_result):
    folder = write_gt_cams(tmp_path / "cams", toy_ds, blur=21)
    whole = evaluate_localization(toy_ds, folder)
    halves = [LocalizationEvaluator(toy_ds), LocalizationEvaluator(toy_ds)]
    for i in range(len(toy_ds)):
        halves[i % 2].update(i, load_full(folder / f"{toy_ds.ids[i]}.npz"))
    halves[1].add_missing(2)
    gathered = [pickle.loads(pickle.dumps(h)) for h in halves]  # what all_gather_object hands back
    assert gathered[0].ds is None  # the dataset never travels
    merged = gathered[0].merge(gathered[1])
    assert merged is gathered[0] and merged.missing == 2
    merged.ds = toy_ds
    same_result(merged.compute(), LocalizationResult(**{**whole.__dict__, "missing": 2}))

    # The same through `indices` + `reduce`, as a sharded stage does it with wsl.dist.merge_all.
    odd = halves[1]
    odd.missing = 0
    sharded = evaluate_localization(
        toy_ds,
        folder,
        indices=range(0, len(toy_ds), 2),
        reduce=lambda acc: pickle.loads(pickle.dumps(acc)).merge(odd),
    )
    same_result(sharded, whole)


def test_merge_rejects_other_settings(toy_ds, hand):
    ds, _ = hand
    with pytest.raises(ValueError, match="protocol"):
        LocalizationEvaluator(toy_ds).merge(
            LocalizationEvaluator(toy_ds, LocalizationProtocol(box_acc_step=0.1))
        )
    with pytest.raises(ValueError, match="class_names"):
        LocalizationEvaluator(toy_ds).merge(LocalizationEvaluator(ds))


def test_missing_corrupt_and_inconsistent_files_are_counted(
    toy_ds, write_gt_cams, tmp_path, same_result, caplog
):
    folder = write_gt_cams(tmp_path / "cams", toy_ds, blur=21)
    ids = toy_ds.ids
    (folder / f"{ids[0]}.npz").unlink()
    (folder / f"{ids[1]}.npz").write_bytes(b"not a zip file")
    rec = io.load_cams(folder / f"{ids[2]}.npz")
    h, w = (int(v) for v in rec["image_size"])
    io.save_cams(
        folder / f"{ids[2]}.npz", rec["classes"], rec["maps"], rec["logits"], (h + 1, w)
    )  # wrong size
    rec3 = io.load_cams(folder / f"{ids[3]}.npz")  # two logits for six classes
    io.save_cams(
        folder / f"{ids[3]}.npz", rec3["classes"], rec3["maps"], rec3["logits"][:2], rec3["image_size"]
    )
    with caplog.at_level("WARNING"):
        r = evaluate_localization(toy_ds, folder)
    assert (r.missing, r.failed) == (1, 3)
    assert sum(m.startswith("skipping ") for m in caplog.messages) == 3  # one line per item, with its file
    rest = evaluate_localization(toy_ds, folder, indices=range(4, len(toy_ds)))
    assert sorted(r.failed_items) == sorted(ids[1:4])  # the reasons name each file
    assert all(f"{i}.npz" in r.failed_items[i] for i in ids[1:4])
    counts = {"missing": 1, "failed": 3, "failed_items": r.failed_items}
    same_result(r, LocalizationResult(**{**rest.__dict__, **counts}))

    classes, maps = rec["classes"], rec["maps"]  # a labelled class without a map is a hard error
    io.save_cams(folder / f"{ids[2]}.npz", classes[1:], maps[1:], rec["logits"], (h, w))
    with pytest.raises(MissingMapError, match="no map for labelled classes"):
        evaluate_localization(toy_ds, folder)


def test_json_round_trip_and_saved_files(hand, tmp_path, same_result):
    ds, cams = hand
    r = evaluate_localization(ds, cams)
    d = json.loads(json.dumps(r.to_json(), allow_nan=False))  # strict JSON
    assert d["units"] == "fractions in [0, 1]"
    for key in (
        "top1_loc_err",
        "top5_loc_err",
        "gt_known_loc",
        "max_box_acc",
        "max_box_acc_v2",
        "max_box_acc_v2_per_iou",
        "corloc",
        "corloc_per_class",
        "pointing_game",
        "images",
        "pairs",
        "skipped_images",
        "fixed_thresholds",
        "tuned_on_gt",
        "pxap",
        "coco_ap",
        "coco_ap50",
    ):
        assert key in d, key
    assert d["gt_known_loc"] == 0.75 and d["coco_ap"] is None
    assert d["tuned_on_gt"]["max_box_acc"] == "CAM threshold chosen on GT: 0.000"
    same_result(LocalizationResult.from_json(d), r)
    with pytest.raises(ValueError, match="units"):
        LocalizationResult.from_json({k: v for k, v in d.items() if k != "units"})

    out = tmp_path / "eval"
    save_localization(out, r, "hand on train")
    assert io.read_json(out / "metrics.json") == d
    md = (out / "metrics.md").read_text()
    assert "# hand on train" in md and "| gt_known_loc | 75.00 |" in md and "| a | 100.0 |" in md
    assert (out / "box_acc_vs_threshold.png").stat().st_size and (out / "pixel_pr_curve.png").stat().st_size
