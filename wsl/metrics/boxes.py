"""Box utilities with the inclusive pixel convention of VOC and wsolevaluation.

A box ``(x0, y0, x1, y1)`` covers columns ``x0..x1`` and rows ``y0..y1`` *inclusive*, so its
area is ``(x1 - x0 + 1) * (y1 - y0 + 1)`` (the "+1" convention of the VOC devkit and of
wsolevaluation's ``calculate_multiple_iou``, Choe et al., CVPR 2020).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_boxes", "box_iou", "clip_boxes"]


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Validate and return boxes as a float64 ``(N, 4)`` array (a copy).

    Accepts ``(4,)`` (one box) or ``(N, 4)``, ``N >= 0``. Raises ``ValueError`` for another shape,
    a non-finite coordinate, or ``x1 < x0`` / ``y1 < y0``.
    """
    arr = np.array(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {np.shape(boxes)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name} must satisfy x0 <= x1 and y0 <= y1 (inclusive x0, y0, x1, y1)")
    return arr


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of inclusive boxes, ``(N, 4) x (M, 4) -> (N, M)`` float64.

    ``inter = max(0, min(x1) - max(x0) + 1) * max(0, min(y1) - max(y0) + 1)`` and
    ``iou = inter / (area_a + area_b - inter)``, exactly wsolevaluation's formula, so a single-pixel
    box ``(0, 0, 0, 0)`` has area 1.
    """
    a = as_boxes(a, "a")
    b = as_boxes(b, "b")
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.maximum(ix, 0.0) * np.maximum(iy, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def clip_boxes(boxes, height: int, width: int, name: str = "boxes") -> np.ndarray:
    """Clip inclusive boxes to an ``(height, width)`` image; float64 ``(N, 4)``.

    Rule used by every metric in ``wsl.metrics``: a box that overlaps the image is clipped to
    ``[0, width - 1] x [0, height - 1]``; a box lying entirely outside raises ``ValueError``.
    """
    arr = as_boxes(boxes, name)
    outside = (arr[:, 2] < 0) | (arr[:, 3] < 0) | (arr[:, 0] > width - 1) | (arr[:, 1] > height - 1)
    if outside.any():
        raise ValueError(
            f"{name}: box {arr[np.argmax(outside)].tolist()} lies outside the {height}x{width} image"
        )
    arr[:, [0, 2]] = arr[:, [0, 2]].clip(0, width - 1)
    arr[:, [1, 3]] = arr[:, [1, 3]].clip(0, height - 1)
    return arr
