"""mIoU, confusion matrices, the one-pass threshold sweep and seed scores against independent references."""

import pickle

import numpy as np
import pytest

from wsl.metrics.segmentation import (
    ConfusionAccumulator,
    SeedScoreAccumulator,
    ThresholdSweep,
    confusion_matrix,
    miou,
    seed_scores,
)


def reference_iou(gts, preds, n):
    """Per-class IoU by set counting over a whole set, void (255) excluded; NaN for an empty union."""
    inter = np.zeros(n)
    union = np.zeros(n)
    for gt, pred in zip(gts, preds):
        valid = gt != 255
        for c in range(n):
            g = (gt == c) & valid
            p = (pred == c) & valid
            inter[c] += np.count_nonzero(g & p)
            union[c] += np.count_nonzero(g | p)
    iou = np.array([inter[c] / union[c] if union[c] else np.nan for c in range(n)])
    return float(np.nanmean(iou)), iou


def random_set(rng, n, count=4, shape=(23, 31)):
    present = rng.choice(n, size=max(2, n // 3), replace=False)  # many classes absent from everything
    gts, preds = [], []
    for _ in range(count):
        gt = rng.choice(present, size=shape).astype(np.uint8)
        gt[rng.random(shape) < 0.15] = 255
        pred = np.where(rng.random(shape) < 0.6, gt, rng.choice(present, size=shape)).astype(np.uint8)
        pred[gt == 255] = rng.choice(present, size=int((gt == 255).sum()))
        gts.append(gt)
        preds.append(pred)
    return gts, preds


@pytest.mark.parametrize("n", [21, 81])
def test_miou_matches_set_counting_reference(n):
    rng = np.random.default_rng(n)
    gts, preds = random_set(rng, n)
    acc = ConfusionAccumulator(n)
    for gt, pred in zip(gts, preds):
        acc.update(gt, pred)
    result = acc.compute()
    got, got_iou = result.miou, result.per_class_iou
    np.testing.assert_array_equal(result.conf, acc.conf)
    ref, ref_iou = reference_iou(gts, preds, n)
    assert np.isnan(ref_iou).sum() > 0  # absent classes are exercised
    np.testing.assert_array_equal(np.isnan(got_iou), np.isnan(ref_iou))
    np.testing.assert_allclose(got_iou[~np.isnan(ref_iou)], ref_iou[~np.isnan(ref_iou)], rtol=0, atol=1e-12)
    assert abs(got - ref) < 1e-12


def test_confusion_matrix_cells_and_no_mutation():
    gt = np.array([[0, 1, 255], [2, 2, 1]], dtype=np.uint8)
    pred = np.array([[0, 2, 1], [2, 0, 1]], dtype=np.uint8)
    gt_copy, pred_copy = gt.copy(), pred.copy()
    conf = confusion_matrix(gt, pred, 3)
    expected = np.zeros((3, 3), dtype=np.int64)
    for g, p in [(0, 0), (1, 2), (2, 2), (2, 0), (1, 1)]:
        expected[g, p] += 1
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, expected)
    np.testing.assert_array_equal(gt, gt_copy)
    np.testing.assert_array_equal(pred, pred_copy)


@pytest.mark.parametrize("bad", [255, 3, -1])
def test_prediction_outside_range_raises(bad):
    gt = np.zeros((2, 2), dtype=np.int64)
    pred = np.zeros((2, 2), dtype=np.int64)
    pred[1, 1] = bad
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(gt, pred, 3)


def test_prediction_255_raises_even_on_void_gt():
    gt = np.full((2, 2), 255, dtype=np.uint8)
    pred = np.full((2, 2), 255, dtype=np.uint8)
    with pytest.raises(ValueError):
        confusion_matrix(gt, pred, 21)


def test_bad_gt_and_shapes_raise():
    with pytest.raises(ValueError, match="gt"):
        confusion_matrix(np.array([7]), np.array([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 3)


def test_miou_nanmean_over_present_classes():
    conf = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    result = miou(conf)
    m, iou = result.miou, result.per_class_iou
    np.testing.assert_allclose(iou[:2], [3 / 4, 2 / 3])
    assert np.isnan(iou[2])
    assert m == pytest.approx((3 / 4 + 2 / 3) / 2, abs=1e-15)
    assert np.isnan(miou(np.zeros((4, 4))).miou)


def stacked_argmax_mask(maps, classes, t):
    """The CAM-to-mask protocol recomputed from scratch with np.argmax over stacked planes."""
    plane = np.full((1, *maps.shape[1:]), t, dtype=maps.dtype)
    keys = np.concatenate([[0], classes]).astype(np.int64)
    return keys[np.concatenate([plane, maps]).argmax(axis=0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_sweep_equals_recomputing(dtype):
    rng = np.random.default_rng(0)
    n = 21
    thresholds = np.round(np.arange(0.0, 1.0, 0.05), 2)
    shuffled = rng.permutation(thresholds)  # the sweep must not rely on the order given
    sweep = ThresholdSweep(n, shuffled)
    accs = [ConfusionAccumulator(n) for _ in shuffled]
    ties = 0
    for i in range(6):
        k = i % 4  # includes an image with no present class
        classes = rng.choice(np.arange(1, n), size=k, replace=False)
        shape = (17, 13)
        # quantised maps: exact ties with thresholds (in the maps' dtype) and among classes
        maps = (np.round(rng.random((k, *shape)) * 20) / 20).astype(dtype)
        ties += int(np.isin(maps, thresholds.astype(dtype)).sum())
        gt = rng.choice(np.concatenate([[0], classes]), size=shape).astype(np.uint8)
        gt[rng.random(shape) < 0.1] = 255
        sweep.update(maps, classes, gt)
        for t, acc in zip(shuffled, accs):
            acc.update(gt, stacked_argmax_mask(maps, classes, t))
    assert ties > 0
    result = sweep.compute()
    confs = sweep.confusion_matrices()
    for j, acc in enumerate(accs):
        np.testing.assert_array_equal(confs[j], acc.conf)
        ref = acc.compute().miou
        assert result.miou[j] == ref or (np.isnan(ref) and np.isnan(result.miou[j]))
    ref_mious = np.array([a.compute().miou for a in accs])
    assert result.best_miou == np.nanmax(ref_mious)
    assert result.best_threshold == shuffled[result.best_index]
    np.testing.assert_array_equal(result.thresholds, shuffled)


def test_threshold_sweep_background_wins_ties_float32():
    # 0.15 in float32 is not 0.15 in float64: the plane is built in the maps' dtype, so this is a tie.
    maps = np.full((1, 1, 2), np.float32(0.15), dtype=np.float32)
    gt = np.array([[0, 1]], dtype=np.uint8)
    sweep = ThresholdSweep(2, [0.15])
    sweep.update(maps, np.array([1]), gt)
    np.testing.assert_array_equal(sweep.confusion_matrices()[0], [[1, 0], [1, 0]])


def test_threshold_sweep_rejects_bad_input():
    sweep = ThresholdSweep(3, [0.1, 0.2])
    with pytest.raises(ValueError):
        sweep.update(np.zeros((1, 2, 2), np.float32), np.array([0]), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        sweep.update(np.zeros((2, 2, 2), np.float32), np.array([1]), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        ThresholdSweep(3, [])


def test_seed_scores_hand_case():
    gt = np.array([[0, 0, 1], [1, 1, 255]], dtype=np.uint8)
    seed = np.array([[0, 255, 1], [0, 255, 1]], dtype=np.uint8)
    s = seed_scores(gt, seed, 3)
    # labelled seed pixels: 4 of 6 (the void GT pixel (1,2) counts: coverage needs no GT)
    assert s.coverage == pytest.approx(4 / 6)
    # class 0 seeds: (0,0) right, (1,0) wrong -> 1/2; class 1: (0,2) right ((1,2) is void) -> 1
    np.testing.assert_allclose(s.precision[:2], [0.5, 1.0])
    assert np.isnan(s.precision[2])
    assert s.mean_precision == pytest.approx(0.75)
    # labelled confusion: gt0->0, gt1->1, gt1->0; IoU0 = 1/2, IoU1 = 1/2
    np.testing.assert_array_equal(s.conf, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert s.miou == pytest.approx(0.5)


def test_seed_scores_accumulate_over_images_and_reject_bad_seeds():
    acc = SeedScoreAccumulator(3)
    acc.update(np.zeros((2, 2), np.uint8), np.array([[0, 255], [255, 255]], np.uint8))
    acc.update(np.ones((1, 2), np.uint8), np.array([[1, 1]], np.uint8))
    s = acc.compute()
    assert s.coverage == pytest.approx(3 / 6)  # 1 + 2 labelled of 4 + 2 pixels
    assert s.miou == pytest.approx(1.0)
    with pytest.raises(ValueError):
        acc.update(np.zeros((1, 1), np.uint8), np.array([[7]], np.uint8))


def test_confusion_and_seed_merge_of_two_halves_equals_one_pass():
    rng = np.random.default_rng(11)
    gts, preds = random_set(rng, 5, count=6)
    seeds = [np.where(rng.random(p.shape) < 0.3, 255, p).astype(np.uint8) for p in preds]
    whole, halves = ConfusionAccumulator(5), [ConfusionAccumulator(5), ConfusionAccumulator(5)]
    s_whole, s_halves = SeedScoreAccumulator(5), [SeedScoreAccumulator(5), SeedScoreAccumulator(5)]
    for k, (gt, pred, seed) in enumerate(zip(gts, preds, seeds)):
        whole.update(gt, pred)
        halves[k % 2].update(gt, pred)
        s_whole.update(gt, seed)
        s_halves[k % 2].update(gt, seed)
    merged = pickle.loads(pickle.dumps(halves[0])).merge(halves[1])
    np.testing.assert_array_equal(merged.conf, whole.conf)
    assert merged.compute().miou == whole.compute().miou
    got, ref = s_halves[0].merge(s_halves[1]).compute(), s_whole.compute()
    for name in ("coverage", "mean_precision", "miou"):
        assert getattr(got, name) == getattr(ref, name)
    np.testing.assert_array_equal(got.conf, ref.conf)
    np.testing.assert_array_equal(got.precision, ref.precision)


def test_threshold_sweep_merge_of_two_halves_equals_one_pass():
    rng = np.random.default_rng(12)
    thresholds = [0.3, 0.1, 0.2]
    whole, halves = ThresholdSweep(4, thresholds), [ThresholdSweep(4, thresholds) for _ in range(2)]
    for k in range(6):
        classes = np.array([1, 3])
        maps = rng.random((2, 9, 7)).astype(np.float32)
        gt = rng.choice([0, 1, 3, 255], size=(9, 7)).astype(np.uint8)
        whole.update(maps, classes, gt)
        halves[k // 3].update(maps, classes, gt)
    merged = pickle.loads(pickle.dumps(halves[0])).merge(halves[1])
    np.testing.assert_array_equal(merged.confusion_matrices(), whole.confusion_matrices())
    got, ref = merged.compute(), whole.compute()
    np.testing.assert_array_equal(got.miou, ref.miou)
    assert (got.best_index, got.best_threshold, got.best_miou) == (
        ref.best_index,
        ref.best_threshold,
        ref.best_miou,
    )


def test_merge_rejects_incompatible_accumulators():
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionAccumulator(3).merge(ConfusionAccumulator(4))
    with pytest.raises(ValueError, match="ignore_index"):
        SeedScoreAccumulator(3).merge(SeedScoreAccumulator(3, ignore_index=0))
    with pytest.raises(ValueError, match="thresholds"):
        ThresholdSweep(3, [0.1, 0.2]).merge(ThresholdSweep(3, [0.2, 0.1]))
    with pytest.raises(ValueError, match="num_classes"):
        ThresholdSweep(3, [0.1]).merge(ThresholdSweep(4, [0.1]))
    with pytest.raises(TypeError):
        ConfusionAccumulator(3).merge(SeedScoreAccumulator(3))
