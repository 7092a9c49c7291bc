"""sweep_boxes: the boxes of every level equal wsolevaluation's per-level OpenCV contours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import wsl.localization.boxes as boxes_module
from wsl.localization import sweep_boxes
from wsl.localization.thresholds import euler8
from wsl.metrics.wsol import canonical_levels, threshold_levels


def opencv_boxes(u8, t, multi_contour):
    """Written from evaluation.md: findContours(RETR_TREE) + boundingRect, one past the end."""
    h, w = u8.shape
    _, binary = cv2.threshold(u8, int(t), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return [(0, 0, 0, 0)]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        out.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
    return sorted(out)


def grouped(boxes, index, n):
    out = [[] for _ in range(n)]
    for b, i in zip(boxes.tolist(), index.tolist()):
        out[i].append(tuple(b))
    return [sorted(o) for o in out]


def u8_map(kind, rng, h, w):
    if kind == "smooth":
        m = cv2.resize(rng.random((5, 5)).astype(np.float32), (w, h))
    elif kind == "rings":
        yy, xx = np.mgrid[:h, :w]
        m = np.cos(np.hypot(yy - h / 3, xx - w / 2) / 2.5) + 0.1 * rng.random((h, w))
    elif kind == "noise":
        m = rng.random((h, w))
    else:
        m = cv2.resize(rng.random((4, 4)), (w, h), interpolation=cv2.INTER_NEAREST)
    m = m - m.min()
    return (m / m.max() * 255).astype(np.uint8)


@pytest.mark.parametrize("multi_contour", [False, True])
@pytest.mark.parametrize("kind", ["smooth", "rings", "noise", "plateaus"])
def test_trees_equal_opencv_per_level(monkeypatch, kind, multi_contour):
    monkeypatch.setattr(boxes_module, "MAX_EXTREMA", 10**6)  # trees even on noise
    rng = np.random.default_rng(len(kind))
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(6, 45, 2))
        u8 = u8_map(kind, rng, h, w)
        levels = np.unique(rng.integers(-1, 256, int(rng.integers(1, 60))))
        want = [opencv_boxes(u8, t, multi_contour) for t in levels]
        for method in ("trees", "opencv"):
            boxes, index = sweep_boxes(u8, levels, multi_contour, method)
            assert boxes.dtype == np.int64
            assert grouped(boxes, index, len(levels)) == want


def test_v1_tie_goes_to_the_contour_opencv_lists_first():
    u8 = np.zeros((9, 9), np.uint8)
    u8[1, 1:4] = 200  # two components with equal (zero) polygon area
    u8[6, 3:8] = 200
    for method in ("trees", "opencv"):
        boxes, _ = sweep_boxes(u8, np.array([10]), False, method)
        np.testing.assert_array_equal(boxes, [opencv_boxes(u8, 10, False)[0]])


def test_threshold_levels_truncate_like_int():
    taus = np.arange(0, 1, 0.01)
    want = [int(t * 255) for t in taus]
    np.testing.assert_array_equal(threshold_levels(255, taus), want)
    assert threshold_levels(100, [0.58])[0] == int(0.58 * 100) == 57


def test_canonical_levels_give_the_same_binary():
    u8 = np.array([[0, 10, 10], [40, 200, 255]], np.uint8)
    levels = np.array([-3, -1, 0, 5, 10, 39, 40, 254, 255, 300])
    canon = canonical_levels(u8, levels)
    for t, c in zip(levels, canon):
        np.testing.assert_array_equal(u8 > t, u8 > c)


def test_levels_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        sweep_boxes(np.zeros((3, 3), np.uint8), np.array([5, 2]), True)


def test_euler_number_of_every_level():
    rng = np.random.default_rng(7)
    for kind in ("smooth", "rings", "noise", "plateaus"):
        u8 = u8_map(kind, rng, 31, 26)
        levels = np.arange(0, 255)
        want = []
        for t in levels:
            hierarchy = cv2.findContours((u8 > t).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)[
                -1
            ]
            h = np.zeros((0, 4)) if hierarchy is None else hierarchy[0]
            want.append(int((h[:, 3] < 0).sum()) - int((h[:, 3] >= 0).sum()))  # components - holes
        np.testing.assert_array_equal(euler8(u8, levels), want)
