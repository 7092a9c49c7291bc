"""MaxBoxAcc / PxAP against an independent re-implementation of wsolevaluation's loop.

The reference below is written from ``shared/reference/evaluation.md`` (Choe et al., CVPR 2020):
one ``cv2.threshold`` + ``cv2.findContours`` + ``cv2.boundingRect`` per CAM threshold.
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

import wsl.localization.boxes as boxes_module
from wsl.metrics.wsol import MaxBoxAccumulator, PxAPAccumulator, best_iou_per_threshold, max_box_acc, pxap

# ---------------------------------------------------------------- reference (wsolevaluation) --


def ref_normalize(cam):
    cam = cam.copy()
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def ref_iou(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
            ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
            inter = max(iw, 0) * max(ih, 0)
            area_p = (p[2] - p[0] + 1) * (p[3] - p[1] + 1)
            area_q = (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
            out[i, j] = inter / (area_p + area_q - inter)
    return out


def ref_boxes_at(scoremap, tau, multi_contour):
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        return [[0, 0, 0, 0]]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return boxes


def ref_max_box_acc(maps, gts, taus, deltas, multi_contour):
    correct = {d: np.zeros(len(taus)) for d in deltas}
    for cam, gt in zip(maps, gts):
        scoremap = ref_normalize(cam)
        best = [ref_iou(ref_boxes_at(scoremap, t, multi_contour), gt).max() for t in taus]
        for d in deltas:
            correct[d][np.asarray(best) >= d] += 1
    curves = {d: correct[d] * 100.0 / len(maps) / 100 for d in deltas}  # percent -> fraction
    return curves, float(np.mean([curves[d].max() for d in deltas]))


def ref_pxap(maps, masks, taus):
    edges = np.append(taus, [1.0, 2.0, 3.0])
    pos = np.zeros(len(edges) - 1)
    neg = np.zeros(len(edges) - 1)
    for cam, mask in zip(maps, masks):
        s = ref_normalize(cam)
        pos += np.histogram(s[mask == 1], bins=edges)[0]
        neg += np.histogram(s[mask == 0], bins=edges)[0]
    tp, fp = pos[::-1].cumsum(), neg[::-1].cumsum()
    fn = pos.sum() - tp
    keep = (tp + fp) > 0
    precision = tp[keep] / (tp[keep] + fp[keep])
    recall = tp[keep] / (tp[keep] + fn[keep])
    return 100 * np.sum(precision[1:] * np.diff(recall)) / 100  # percent -> fraction


# ------------------------------------------------------------------------------ test maps --


def make_map(kind, rng, h, w):
    if kind == "smooth":  # CAM-like: a coarse grid upsampled
        g = int(rng.integers(3, 8))
        return cv2.resize(rng.random((g, g)).astype(np.float32), (w, h))
    if kind == "noise":  # many components
        return rng.random((h, w))
    if kind == "ring":  # holes
        yy, xx = np.mgrid[:h, :w]
        return np.cos(np.hypot(yy - h / 2, xx - w / 2) / rng.uniform(1.5, 4)) + 0.05 * rng.random((h, w))
    if kind == "blocky":  # plateaus
        return cv2.resize(rng.random((5, 5)), (w, h), interpolation=cv2.INTER_NEAREST)
    if kind == "constant":
        return np.full((h, w), 0.7, np.float32)
    if kind == "zeros":
        return np.zeros((h, w))
    raise AssertionError(kind)


def make_gt(rng, h, w):
    n = int(rng.integers(1, 4))
    x0, y0 = rng.integers(0, w, n), rng.integers(0, h, n)
    x1, y1 = x0 + rng.integers(0, w, n), y0 + rng.integers(0, h, n)
    return np.stack([x0, y0, np.minimum(x1, w - 1), np.minimum(y1, h - 1)], 1)


KINDS = ["smooth", "noise", "ring", "blocky", "constant", "zeros"]


def dataset(seed, n=24):
    rng = np.random.default_rng(seed)
    maps, gts = [], []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(8, 40, 2))
        maps.append(make_map(KINDS[i % len(KINDS)], rng, h, w))
        gts.append(make_gt(rng, h, w))
    return maps, gts


# ---------------------------------------------------------------------------------- tests --


@pytest.mark.parametrize("multi_contour,deltas", [(False, (0.5,)), (True, (0.3, 0.5, 0.7))])
@pytest.mark.parametrize("seed", [0, 1])
def test_max_box_acc_matches_reference(multi_contour, deltas, seed):
    maps, gts = dataset(seed)
    taus = np.arange(0, 1, 0.01)
    curves, ref = ref_max_box_acc(maps, gts, taus, deltas, multi_contour)
    out = max_box_acc(maps, gts, taus, deltas, multi_contour)
    assert abs(out.max_box_acc - ref) < 1e-11  # the 1e-9 of percentages, in fractions
    for d in deltas:
        np.testing.assert_allclose(out.box_acc[d], curves[d], rtol=0, atol=1e-11)
        assert out.best_acc[d] == pytest.approx(curves[d].max(), abs=1e-11)
        assert out.best_index[d] == int(np.argmax(curves[d]))
        assert out.best_threshold[d] == taus[out.best_index[d]]


@pytest.mark.parametrize("multi_contour", [False, True])
def test_every_path_matches_reference_per_threshold(monkeypatch, multi_contour):
    """Component trees (forced even on noise), the OpenCV fallback and auto agree with the loop."""
    monkeypatch.setattr(boxes_module, "MAX_EXTREMA", 10**6)
    maps, gts = dataset(2, n=18)
    taus = np.linspace(-0.05, 1.02, 61)
    for cam, gt in zip(maps, gts):
        scoremap = ref_normalize(cam)
        ref = [ref_iou(ref_boxes_at(scoremap, t, multi_contour), gt).max() for t in taus]
        for method in ("trees", "opencv", "auto"):
            got = best_iou_per_threshold(cam, gt, taus, multi_contour, method)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_fallback_for_noisy_maps_is_exact():
    rng = np.random.default_rng(3)
    cam, gt = rng.random((64, 64)), np.array([[5, 5, 40, 30]])
    taus = np.arange(0, 1, 0.02)
    for multi in (False, True):
        ref = [ref_iou(ref_boxes_at(ref_normalize(cam), t, multi), gt).max() for t in taus]
        np.testing.assert_allclose(best_iou_per_threshold(cam, gt, taus, multi), ref, atol=1e-12)
    with pytest.raises(ValueError, match="regional extrema"):
        best_iou_per_threshold(cam, gt, taus, False, method="trees")


def test_hole_gives_a_box_in_v2_only():
    cam = np.zeros((12, 12))
    cam[2:9, 2:9] = 1.0
    cam[5, 5] = 0.0  # one-pixel hole: its contour box is (4, 4, 6, 6) -> one past the end (4,4,7,7)
    gt = np.array([[4, 4, 7, 7]])
    taus = np.array([0.5])
    assert best_iou_per_threshold(cam, gt, taus, multi_contour=True)[0] == 1.0
    assert best_iou_per_threshold(cam, gt, taus, multi_contour=False)[0] < 0.5


def test_empty_foreground_box_counts():
    cam = np.zeros((10, 10))  # constant -> zeros -> no contour -> box (0, 0, 0, 0)
    out = max_box_acc([cam], [np.array([[0, 0, 0, 0]])], thresholds=[0.0, 0.5])
    np.testing.assert_array_equal(out.box_acc[0.5], [1.0, 1.0])


def test_accumulator_is_flat_and_matches_function():
    maps, gts = dataset(4, n=10)
    acc = MaxBoxAccumulator(np.arange(0, 1, 0.05), (0.3, 0.5, 0.7), multi_contour=True)
    for m, g in zip(maps, gts):
        acc.update(m, g)
    assert acc.hits.shape == (3, 20) and acc.count == 10
    ref = max_box_acc(maps, gts, np.arange(0, 1, 0.05), (0.3, 0.5, 0.7), True)
    assert acc.compute().max_box_acc == ref.max_box_acc


def test_pxap_matches_reference_and_ignores_255():
    rng = np.random.default_rng(5)
    maps, masks = [], []
    for i in range(12):
        h, w = (int(v) for v in rng.integers(8, 30, 2))
        maps.append(make_map(KINDS[i % len(KINDS)], rng, h, w))
        mask = (rng.random((h, w)) < 0.3).astype(np.uint8)
        mask[rng.random((h, w)) < 0.1] = 255
        masks.append(mask)
    for taus in (np.arange(0, 1, 0.01), np.arange(0, 1, 0.001)):
        out = pxap(maps, masks, taus)
        assert abs(out.pxap - ref_pxap(maps, masks, taus)) < 1e-11  # the 1e-9 of percentages
        assert out.precision.shape == out.recall.shape == out.thresholds.shape
    as_background = [np.where(m == 255, 0, m).astype(np.uint8) for m in masks]
    assert pxap(maps, as_background).pxap != pytest.approx(pxap(maps, masks).pxap)


def test_bad_input_raises_and_inputs_are_untouched():
    cam = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    gt = np.array([[2, 2, 9, 9]])
    cam_copy, gt_copy = cam.copy(), gt.copy()
    max_box_acc([cam], [gt])
    pxap([cam], [np.ones((16, 16), np.uint8)])
    np.testing.assert_array_equal(cam, cam_copy)
    np.testing.assert_array_equal(gt, gt_copy)
    bad = cam.copy()
    bad[0, 0] = np.nan
    for broken in (bad, np.where(cam > 0.5, np.inf, cam)):
        with pytest.raises(ValueError, match="NaN or inf"):
            max_box_acc([broken], [gt])
        with pytest.raises(ValueError, match="NaN or inf"):
            pxap([broken], [np.ones((16, 16), np.uint8)])
    with pytest.raises(ValueError, match="no GT box"):
        max_box_acc([cam], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="outside"):
        max_box_acc([cam], [np.array([[20, 20, 30, 30]])])
    with pytest.raises(ValueError, match="x0 <= x1"):
        max_box_acc([cam], [np.array([[5, 5, 2, 9]])])
    with pytest.raises(ValueError, match="mask values"):
        pxap([cam], [np.full((16, 16), 2, np.uint8)])
    with pytest.raises(ValueError, match="shape"):
        pxap([cam], [np.ones((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="before any update"):
        MaxBoxAccumulator().compute()
    with pytest.raises(ValueError, match="foreground"):
        pxap([cam], [np.zeros((16, 16), np.uint8)])


def test_partly_outside_gt_box_is_clipped():
    cam = np.zeros((10, 10))
    cam[5:, 5:] = 1
    inside = max_box_acc([cam], [np.array([[5, 5, 9, 9]])], [0.5])
    clipped = max_box_acc([cam], [np.array([[5, 5, 14, 12]])], [0.5])
    assert inside.box_acc[0.5][0] == clipped.box_acc[0.5][0]


@pytest.mark.parametrize("multi_contour,deltas", [(False, (0.5,)), (True, (0.3, 0.5, 0.7))])
def test_max_box_acc_merge_of_two_halves_equals_one_pass(multi_contour, deltas):
    maps, gts = dataset(6, n=12)
    taus = np.arange(0, 1, 0.05)
    halves = [MaxBoxAccumulator(taus, deltas, multi_contour) for _ in range(2)]
    for k, (m, g) in enumerate(zip(maps, gts)):
        halves[k % 2].update(m, g)
    merged = pickle.loads(pickle.dumps(halves[0])).merge(pickle.loads(pickle.dumps(halves[1])))
    whole, got = max_box_acc(maps, gts, taus, deltas, multi_contour), merged.compute()
    assert got.count == whole.count == 12 and got.max_box_acc == whole.max_box_acc
    for d in deltas:
        np.testing.assert_array_equal(got.box_acc[d], whole.box_acc[d])
        assert (got.best_index[d], got.best_threshold[d]) == (whole.best_index[d], whole.best_threshold[d])


def test_pxap_merge_of_two_halves_equals_one_pass():
    rng = np.random.default_rng(8)
    maps = [make_map(KINDS[i % len(KINDS)], rng, 12, 15) for i in range(8)]
    masks = [(rng.random((12, 15)) < 0.4).astype(np.uint8) for _ in maps]
    halves = [PxAPAccumulator(), PxAPAccumulator()]
    for k, (m, g) in enumerate(zip(maps, masks)):
        halves[k // 4].update(m, g)
    got, whole = halves[0].merge(halves[1]).compute(), pxap(maps, masks)
    assert got.pxap == whole.pxap
    np.testing.assert_array_equal(got.precision, whole.precision)
    np.testing.assert_array_equal(got.recall, whole.recall)


def test_merge_rejects_incompatible_accumulators():
    taus = np.arange(0, 1, 0.05)
    for other in (
        MaxBoxAccumulator(np.arange(0, 1, 0.1)),
        MaxBoxAccumulator(taus, (0.3,)),
        MaxBoxAccumulator(taus, multi_contour=True),
    ):
        with pytest.raises(ValueError, match="different"):
            MaxBoxAccumulator(taus).merge(other)
    with pytest.raises(ValueError, match="different"):
        PxAPAccumulator(taus).merge(PxAPAccumulator(np.arange(0, 1, 0.1)))
    with pytest.raises(TypeError):
        PxAPAccumulator(taus).merge(MaxBoxAccumulator(taus))
