"""box_iou / clip_boxes: the inclusive (+1) convention and the bad-input rules."""

from __future__ import annotations

import numpy as np
import pytest

from wsl.metrics.boxes import as_boxes, box_iou, clip_boxes


def test_inclusive_convention_hand_made():
    a = np.array([[0, 0, 1, 1]])  # 2 x 2 pixels
    cases = {
        (0, 0, 1, 1): 1.0,
        (0, 0, 0, 0): 1 / 4,  # a single pixel has area 1
        (1, 1, 2, 2): 1 / 7,  # corners touch: one shared pixel, union 4 + 4 - 1
        (2, 0, 3, 1): 0.0,  # adjacent, no shared pixel
        (0, 0, 3, 1): 4 / 8,
    }
    for b, want in cases.items():
        assert box_iou(a, np.array([b]))[0, 0] == pytest.approx(want, abs=1e-15)


def test_shapes_symmetry_and_dtype():
    rng = np.random.default_rng(0)
    x0, y0 = rng.integers(0, 50, (2, 7))
    a = np.stack([x0, y0, x0 + rng.integers(0, 20, 7), y0 + rng.integers(0, 20, 7)], 1)
    b = a[:3] + 2
    iou = box_iou(a, b)
    assert iou.shape == (7, 3) and iou.dtype == np.float64
    np.testing.assert_allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert box_iou(a, np.zeros((0, 4))).shape == (7, 0)
    assert box_iou([1, 2, 3, 4], [1, 2, 3, 4]).shape == (1, 1)


def test_bad_boxes_raise():
    for bad in ([[3, 0, 1, 5]], [[0, 4, 1, 2]], [[0, 0, np.nan, 1]], [[0, 0, 1]], np.zeros((2, 2, 4))):
        with pytest.raises(ValueError):
            as_boxes(bad)


def test_clip_rule():
    clipped = clip_boxes([[-3, 2, 12, 20]], height=10, width=8)
    np.testing.assert_array_equal(clipped, [[0, 2, 7, 9]])
    with pytest.raises(ValueError, match="outside"):
        clip_boxes([[8, 0, 9, 3]], height=10, width=8)
    boxes = np.array([[-1, -1, 3, 3]])
    clip_boxes(boxes, 5, 5)
    np.testing.assert_array_equal(boxes, [[-1, -1, 3, 3]])  # input untouched
