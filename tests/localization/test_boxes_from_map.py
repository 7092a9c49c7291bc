"""boxes_from_map: inclusive boxes, strict threshold, 8-connectivity, Otsu / percentile rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsl.localization import boxes_from_map, otsu_level, quantize_map, threshold_cut


def test_box_is_truly_inclusive():
    m = np.zeros((10, 12), np.float32)
    m[2:5, 3:8] = 1.0  # rows 2..4, columns 3..7
    out = boxes_from_map(m, 0.5)
    assert out.dtype == np.int64 and out.shape == (1, 4)
    np.testing.assert_array_equal(out[0], [3, 2, 7, 4])


def test_strictly_above_fraction_of_max():
    m = np.zeros((6, 6))
    m[1, 1] = 1.0
    m[4, 4] = 0.15  # equal to the cut: background
    m[4, 1] = 0.16
    np.testing.assert_array_equal(boxes_from_map(m, 0.15, "all"), [[1, 1, 1, 1], [1, 4, 1, 4]])


def test_eight_connectivity_and_largest_by_pixels():
    m = np.zeros((10, 10))
    m[0, 0] = m[1, 1] = m[2, 2] = 1.0  # a diagonal: one 8-connected component of 3 pixels
    m[6:8, 6:9] = 1.0  # 6 pixels
    assert len(boxes_from_map(m, 0.5, "all")) == 2
    np.testing.assert_array_equal(boxes_from_map(m, 0.5, "largest"), [[6, 6, 8, 7]])
    m[5, 0:7] = 0.9  # 7 pixels, now the largest
    np.testing.assert_array_equal(boxes_from_map(m, 0.5, "largest"), [[0, 5, 8, 7]])


def test_all_mode_orders_by_first_pixel_and_ties_take_the_first():
    m = np.zeros((8, 8))
    m[5, 1] = m[5, 2] = 1.0
    m[1, 6] = m[2, 6] = 1.0
    np.testing.assert_array_equal(boxes_from_map(m, 0.5, "all"), [[6, 1, 6, 2], [1, 5, 2, 5]])
    np.testing.assert_array_equal(boxes_from_map(m, 0.5), [[6, 1, 6, 2]])


def test_no_foreground_gives_empty_array():
    for m in (np.zeros((5, 5)), -np.ones((5, 5))):
        out = boxes_from_map(m)
        assert out.shape == (0, 4) and out.dtype == np.int64
    # a constant positive map is all foreground under the relative rule (c > 0.15 c)
    np.testing.assert_array_equal(boxes_from_map(np.full((4, 5), 2.0)), [[0, 0, 4, 3]])


@pytest.mark.parametrize("seed", range(6))
def test_otsu_equals_opencv(seed):
    rng = np.random.default_rng(seed)
    if seed == 0:
        u8 = np.full((20, 20), 7, np.uint8)  # constant
    elif seed == 1:
        u8 = np.where(rng.random((30, 30)) < 0.3, 40, 200).astype(np.uint8)  # two values
    else:
        a = rng.normal(60 + 10 * seed, 15, 500)
        b = rng.normal(180, 25, int(rng.integers(100, 900)))
        u8 = np.clip(np.concatenate([a, b]), 0, 255).astype(np.uint8).reshape(1, -1)
    level, binary = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    assert otsu_level(u8) == int(level)
    m = u8.astype(np.float64) / 3.0 + 1.0  # min-max normalisation then uint8 gives back u8-like data
    ref = cv2.threshold(quantize_map(m), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1] > 0
    np.testing.assert_array_equal(threshold_cut(m, method="otsu"), ref)


def test_percentile_rule():
    m = np.arange(100, dtype=np.float64).reshape(10, 10)
    assert threshold_cut(m, 90, method="percentile").sum() == 10
    np.testing.assert_array_equal(boxes_from_map(m, 90, method="percentile"), [[0, 9, 9, 9]])


def test_bad_input():
    m = np.ones((4, 4))
    bad = m.copy()
    bad[1, 1] = np.nan
    for broken in (bad, np.full((4, 4), np.inf), np.ones((2, 4, 4)), np.ones((4, 4), bool), np.ones((0, 3))):
        with pytest.raises(ValueError):
            boxes_from_map(broken)
    with pytest.raises(ValueError, match="threshold=None"):
        boxes_from_map(m, 0.2, method="otsu")
    with pytest.raises(ValueError, match="percentile"):
        boxes_from_map(m, 120, method="percentile")
    with pytest.raises(ValueError, match="mode"):
        boxes_from_map(m, mode="biggest")
    with pytest.raises(ValueError, match="unknown method"):
        boxes_from_map(m, method="mean")


def test_input_not_modified():
    m = np.random.default_rng(0).random((9, 9)).astype(np.float32)
    before = m.copy()
    boxes_from_map(m, 0.3, "all")
    boxes_from_map(m, method="otsu")
    quantize_map(m)
    np.testing.assert_array_equal(m, before)
