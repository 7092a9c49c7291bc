"""Grad-CAM protocol localization error, pointing game and CorLoc on hand-made cases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from wsl.metrics.localization import LocalizationAccumulator, gradcam_box, pointing_hit

H = W = 40


def blob(y0, x0, y1, x1, value=1.0):
    m = np.zeros((H, W))
    m[y0 : y1 + 1, x0 : x1 + 1] = value
    return m


def test_fifteen_percent_protocol_keeps_the_largest_segment():
    m = blob(5, 5, 20, 20)  # 256 px
    m[30:33, 30:33] = 0.2  # above 15 %: a second, smaller segment
    m[0:40, 38] = 0.1  # below 15 %: background
    np.testing.assert_array_equal(gradcam_box(m), [5, 5, 20, 20])
    m[25:40, 0:28] = 0.16  # 420 px: now the largest segment
    np.testing.assert_array_equal(gradcam_box(m), [0, 25, 27, 39])
    assert gradcam_box(np.zeros((H, W))).size == 0


def test_top1_top5_and_gt_known():
    acc = LocalizationAccumulator()
    maps = np.zeros((10, H, W))
    maps[3] = blob(10, 10, 29, 29)  # class 3 localises its box
    maps[7] = blob(0, 0, 5, 5)  # class 7 points at the wrong place
    gt, labels = np.array([[10, 10, 29, 29]]), np.array([3])
    scores = np.arange(10.0)[::-1].copy()
    scores[3] = 20  # top-1 = 3, localised -> all correct
    acc.update(maps, scores, gt, labels)
    scores = np.arange(10.0)[::-1].copy()
    scores[3] = 6.5  # rank 4 (after 0, 1, 2): wrong top-1, right top-5
    acc.update(maps, scores, gt, labels)
    scores[3] = -1  # out of the top 5
    acc.update(maps, scores, gt, labels)
    labels7 = np.array([7])
    scores = np.zeros(10)
    scores[7] = 1  # right class, wrong place: a localization error for every k
    acc.update(maps, scores, gt, labels7)
    out = acc.compute()
    assert out.top1_loc_err == pytest.approx(0.75)
    assert out.topk == 5 and out.topk_loc_err == pytest.approx(0.50)
    assert out.gt_known_loc == pytest.approx(0.75)
    assert out.images == 4 and out.pairs == 4


def test_multilabel_pairs_difficult_and_corloc():
    acc = LocalizationAccumulator(topk=1)
    maps = {1: blob(0, 0, 9, 9), 2: blob(20, 20, 39, 39), 4: blob(0, 30, 5, 39)}
    boxes = np.array([[0, 0, 9, 9], [20, 20, 39, 39], [0, 30, 5, 39], [25, 0, 35, 10]])
    labels = np.array([1, 2, 4, 4])
    difficult = np.array([False, False, True, True])  # class 4: difficult only -> ignored
    scores = np.array([0, 1, 2, 0, 9, 0.0])  # top-1 is class 4 (ignored) -> the ranking skips it
    acc.update(maps, scores, boxes, labels, difficult)
    # image 2: class 2 only, its map misses (box far away)
    acc.update({2: blob(0, 0, 3, 3)}, np.array([0, 0, 5, 0, 0, 0.0]), boxes[1:2], np.array([2]))
    # image 3: only difficult boxes -> left out entirely
    acc.update({1: blob(0, 0, 9, 9)}, np.ones(6), boxes[:1], np.array([1]), np.array([True]))
    out = acc.compute()
    assert out.pairs == 3 and out.images == 2 and out.skipped_images == 1
    assert out.corloc_per_class == {1: 1.0, 2: 0.5}
    assert out.corloc == pytest.approx(0.75)
    assert out.gt_known_loc == pytest.approx(2 / 3)
    assert out.top1_loc_err == pytest.approx(0.5)  # image 1: class 2 ranks first and is right


def test_difficult_boxes_still_count_as_matches():
    acc = LocalizationAccumulator()
    boxes = np.array([[0, 0, 5, 5], [20, 20, 39, 39]])
    acc.update({3: blob(20, 20, 39, 39)}, np.eye(5)[3], boxes, np.array([3, 3]), np.array([False, True]))
    assert acc.compute().gt_known_loc == 1.0


def test_pointing_game_tolerance():
    m = np.zeros((H, W))
    m[20, 30] = 1.0
    assert pointing_hit(m, [[10, 10, 30, 30]])  # inside
    assert pointing_hit(m, [[0, 0, 15, 20]])  # 15 px to the right of the box edge: hit
    assert not pointing_hit(m, [[0, 0, 14, 20]])  # 16 px
    assert pointing_hit(m, [[0, 0, 20, 10]])  # diagonal: hypot(10, 10) = 14.1
    assert not pointing_hit(m, [[0, 0, 19, 9]])  # hypot(11, 11) = 15.6
    assert not pointing_hit(np.ones((H, W)), [[0, 0, 39, 39]])  # a constant map points nowhere
    acc = LocalizationAccumulator()
    acc.update({1: m}, np.array([0, 1.0]), np.array([[25, 15, 35, 25]]), np.array([1]))
    acc.update({1: m}, np.array([0, 1.0]), np.array([[0, 0, 5, 5]]), np.array([1]))
    assert acc.compute().pointing_game == 0.5


def test_bad_input():
    acc = LocalizationAccumulator()
    m = blob(0, 0, 9, 9)
    bad = m.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        acc.update({1: bad}, np.ones(3), [[0, 0, 9, 9]], [1])
    with pytest.raises(ValueError, match="outside"):
        acc.update({1: m}, np.ones(3), [[50, 50, 60, 60]], [1])
    with pytest.raises(ValueError, match="labels"):
        acc.update({1: m}, np.ones(3), [[0, 0, 9, 9]], [7])
    with pytest.raises(ValueError, match="no map"):
        acc.update({2: m}, np.ones(3), [[0, 0, 9, 9]], [1])
    with pytest.raises(ValueError, match="same length"):
        acc.update({1: m}, np.ones(3), [[0, 0, 9, 9]], [1, 1])
    with pytest.raises(ValueError, match="K = 3"):
        acc.update(np.zeros((2, H, W)), np.ones(3), [[0, 0, 9, 9]], [1])
    acc.update({1: m}, np.ones(3), np.zeros((0, 4)), np.zeros(0, int))  # no GT box: left out
    with pytest.raises(ValueError, match="no image"):
        acc.compute()


def _images():
    """Five hand-made images (maps, scores, boxes, labels, difficult), some localised, some not."""
    far = {2: blob(0, 0, 3, 3)}
    both = {1: blob(0, 0, 9, 9), 2: blob(20, 20, 39, 39)}
    boxes = np.array([[0, 0, 9, 9], [20, 20, 39, 39]])
    return [
        (both, np.array([0, 2, 1.0]), boxes, np.array([1, 2]), None),
        (far, np.array([0, 0, 5.0]), boxes[1:], np.array([2]), None),
        ({1: blob(0, 0, 9, 9)}, np.ones(3), boxes[:1], np.array([1]), np.array([True])),  # skipped
        ({1: blob(5, 5, 30, 30)}, np.array([0, 1, 0.0]), boxes[:1], np.array([1]), None),
        (both, np.array([0, 0, 1.0]), boxes, np.array([1, 2]), np.array([False, False])),
    ]


def test_merge_of_two_halves_equals_one_pass():
    images = _images()
    whole, first, second = LocalizationAccumulator(), LocalizationAccumulator(), LocalizationAccumulator()
    for k, item in enumerate(images):
        whole.update(*item)
        (first if k < 2 else second).update(*item)
    assert first.merge(second) is first
    assert first.compute() == whole.compute()  # a frozen dataclass of plain numbers: == compares all
    assert pickle.loads(pickle.dumps(first)).compute() == whole.compute()


def test_merge_rejects_other_settings():
    for other in (LocalizationAccumulator(threshold=0.2), LocalizationAccumulator(topk=1)):
        with pytest.raises(ValueError, match="different"):
            LocalizationAccumulator().merge(other)
    with pytest.raises(TypeError):
        LocalizationAccumulator().merge(object())
