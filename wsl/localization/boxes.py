"""Score map -> boxes: the Grad-CAM protocol, its threshold variants, wsolevaluation's sweep.

Conventions (used throughout ``wsl.localization`` and ``wsl.metrics``):

* a score map is a 2-D float array ``(H, W)``; maps with NaN or inf raise ``ValueError``;
* a box is ``(x0, y0, x1, y1)`` in *truly inclusive* pixel coordinates: the box covers columns
  ``x0..x1`` and rows ``y0..y1``, so its width is ``x1 - x0 + 1``;
* foreground is *strictly above* the cut; components are 8-connected.

The Grad-CAM localization protocol (Selvaraju et al., ICCV 2017, Sec. 4.1) is
``boxes_from_map(map, 0.15, mode="largest")``: binarise at 15 % of the maximum, keep the largest
connected segment, take its bounding box.

:func:`sweep_boxes` draws wsolevaluation's boxes (Choe et al., CVPR 2020,
``compute_bboxes_from_scoremaps``) at many thresholds: ``u8 = uint8(minmax(map) * 255)`` strictly
above each level, ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``, ``cv2.boundingRect`` as
``(x, y, x + w, y + h)`` with ``x1, y1`` clipped to ``W - 1, H - 1``, ``(0, 0, 0, 0)`` without
contour, and for V1 only the contour of largest ``cv2.contourArea``. Instead of tracing contours
level by level it reads them from the component trees of the map
(``wsl.localization.thresholds``), which gives the same boxes:

* the contours of ``RETR_TREE`` are the outer borders of the 8-connected foreground components
  (box = component bbox) and the borders of the holes, 4-connected background components off the
  image border (traced on the foreground pixels around them: box = hole bbox grown by one pixel);
* the largest ``contourArea`` is the outer border of an outermost component; its polygon through
  pixel centres has area ``#quads with 4 pixels + #quads with 3 pixels / 2`` over the component
  with its holes filled (Pick's theorem on 2 x 2 quads); ties go to the contour OpenCV lists
  first, the one whose first pixel comes last in row-major order.

Very noisy maps (more than ``MAX_EXTREMA`` regional extrema) use the per-level OpenCV loop; both
paths are exact and tested against each other and against the loop.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from scipy import ndimage

from wsl.localization.thresholds import component_levels, euler8, fill_levels, hole_levels

__all__ = [
    "boxes_from_map",
    "check_map",
    "minmax_normalize",
    "otsu_level",
    "quantize_map",
    "sweep_boxes",
    "threshold_cut",
]

# Above this many regional maxima (interior minima) the per-level OpenCV loop is faster.
MAX_EXTREMA = 64

_EIGHT = np.ones((3, 3), dtype=bool)


def check_map(score_map: np.ndarray, name: str = "score_map") -> np.ndarray:
    """Return ``score_map`` as an array after checking it is a finite, real 2-D map.

    Raises ``ValueError`` for a wrong number of dimensions, an empty map, a non-numeric dtype or
    any NaN / inf value: a non-finite map is always an upstream bug, never silently repaired.
    """
    arr = np.asarray(score_map)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def minmax_normalize(score_map: np.ndarray) -> np.ndarray:
    """Min-max normalise to ``[0, 1]`` exactly as wsolevaluation (Choe et al., CVPR 2020) does.

    The arithmetic stays in the map's own dtype when it is float32 or float64 (other dtypes are
    converted to float64) so that the later ``uint8`` quantisation matches theirs bit for bit. A
    constant map becomes all zeros. Returns a new array; the input is never modified.
    """
    arr = check_map(score_map)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    lo, hi = arr.min(), arr.max()
    if lo == hi:
        return np.zeros_like(arr)
    out = arr - lo
    return out / out.max()


def quantize_map(score_map: np.ndarray) -> np.ndarray:
    """wsolevaluation's quantisation ``uint8(minmax(map) * 255)`` (truncation), shape ``(H, W)``."""
    return (minmax_normalize(score_map) * 255).astype(np.uint8)


def otsu_level(u8: np.ndarray) -> int:
    """Otsu's threshold of a ``uint8`` image, equal to ``cv2.threshold(..., THRESH_OTSU)``.

    Maximises the between-class variance ``q1 q2 (mu1 - mu2)^2`` (Otsu, 1979) over the levels
    ``0..255`` with the same running sums and the same first-maximum rule as OpenCV, so that the
    chosen level is identical even on ties. Foreground is ``u8 > level``.
    """
    hist = np.bincount(np.asarray(u8, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    scale = 1.0 / u8.size
    mu = float(np.dot(np.arange(256, dtype=np.float64), hist)) * scale
    eps = float(np.finfo(np.float32).eps)
    q1 = mu1 = max_sigma = 0.0
    best = 0
    for i in range(256):
        p_i = hist[i] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < eps or max(q1, q2) > 1.0 - eps:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
        if sigma > max_sigma:
            max_sigma = sigma
            best = i
    return best


Method = Literal["relative", "percentile", "otsu"]


def threshold_cut(
    score_map: np.ndarray, threshold: float | None = None, method: Method = "relative"
) -> np.ndarray:
    """Foreground mask ``(H, W)`` bool of a map under one of three threshold rules.

    * ``"relative"`` (default, threshold defaults to 0.15): ``map > threshold * max(map)``;
    * ``"percentile"``: ``map > np.percentile(map, threshold)`` with ``threshold`` in ``[0, 100]``;
    * ``"otsu"``: ``threshold`` must be ``None``; the map is quantised with :func:`quantize_map`
      and the foreground is ``u8 > otsu_level(u8)``, the same mask as ``cv2.THRESH_OTSU``.
    """
    arr = check_map(score_map)
    if method == "otsu":
        if threshold is not None:
            raise ValueError("method='otsu' chooses its own threshold: pass threshold=None")
        u8 = quantize_map(arr)
        return u8 > otsu_level(u8)
    if method == "relative":
        frac = 0.15 if threshold is None else float(threshold)
        if not np.isfinite(frac):
            raise ValueError(f"threshold must be finite, got {threshold}")
        return arr > frac * arr.max()
    if method == "percentile":
        if threshold is None or not 0.0 <= float(threshold) <= 100.0:
            raise ValueError(f"method='percentile' needs threshold in [0, 100], got {threshold}")
        return arr > np.percentile(arr, float(threshold))
    raise ValueError(f"unknown method {method!r}; expected 'relative', 'percentile' or 'otsu'")


def boxes_from_map(
    score_map: np.ndarray,
    threshold: float | None = None,
    mode: Literal["largest", "all"] = "largest",
    method: Method = "relative",
) -> np.ndarray:
    """Boxes of the 8-connected foreground components of a score map.

    Args:
        score_map: ``(H, W)`` real array, finite.
        threshold: see :func:`threshold_cut` (fraction of the maximum by default, 0.15 if None).
        mode: ``"largest"`` keeps the component with the most pixels (ties: the one whose first
            pixel in row-major order comes first); ``"all"`` returns every component, ordered by
            their first pixel in row-major order.
        method: ``"relative"``, ``"percentile"`` or ``"otsu"`` (see :func:`threshold_cut`).

    Returns:
        int64 array ``(N, 4)`` of inclusive ``x0, y0, x1, y1``. ``N = 0`` (shape ``(0, 4)``) when
        no pixel is strictly above the cut: an all-zero or non-positive map with the relative rule,
        any constant map with Otsu. (A constant positive map is all foreground: one full box.)
    """
    if mode not in ("largest", "all"):
        raise ValueError(f"mode must be 'largest' or 'all', got {mode!r}")
    fg = threshold_cut(score_map, threshold, method)
    labels, n = ndimage.label(fg, structure=_EIGHT)
    if n == 0:
        return np.zeros((0, 4), dtype=np.int64)
    slices = ndimage.find_objects(labels)
    boxes = np.array([[s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1] for s in slices], dtype=np.int64)
    if mode == "all":
        return boxes
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return boxes[[int(np.argmax(sizes))]]


def _rect_boxes(x0, y0, x1, y1, height: int, width: int) -> np.ndarray:
    """wsolevaluation's box of an inclusive pixel rectangle: one past the end, then clipped."""
    x1, y1 = np.minimum(x1 + 1, width - 1), np.minimum(y1 + 1, height - 1)
    return np.stack([x0, y0, x1, y1], 1).astype(np.int64)


def _direct(u8: np.ndarray, levels: np.ndarray, multi_contour: bool):
    """The per-level OpenCV loop of wsolevaluation, once per level. Returns (boxes, level index)."""
    height, width = u8.shape
    boxes, index = [], []
    for i, t in enumerate(levels):
        contours = cv2.findContours(
            cv2.compare(u8, int(t), cv2.CMP_GT), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE
        )[-2]
        if not multi_contour and contours:
            contours = [max(contours, key=cv2.contourArea)]
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
            index.append(i)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4), np.array(index, dtype=np.int64)


def _with_trees(u8: np.ndarray, levels: np.ndarray, multi_contour: bool):
    """Same output as :func:`_direct` for levels in ``[0, 254]``; None when too many extrema."""
    height, width = u8.shape
    found = hole_levels(u8, levels, MAX_EXTREMA)
    if found is None:
        return None
    holes, reach = found
    hole_level = holes["level"]
    if multi_contour:

        def counts():  # components = Euler number + holes
            return euler8(u8, levels) + np.bincount(hole_level, minlength=len(levels))

        fg = component_levels(u8, 8, levels, MAX_EXTREMA, counts=counts)
        if fg is None:
            return None
        boxes = [
            _rect_boxes(fg["x0"], fg["y0"], fg["x1"], fg["y1"], height, width),
            _rect_boxes(holes["x0"] - 1, holes["y0"] - 1, holes["x1"] + 1, holes["y1"] + 1, height, width),
        ]
        return np.concatenate(boxes), np.concatenate([fg["level"], hole_level])
    filled = fill_levels(reach, (254 - levels)[::-1]) if hole_level.size else u8
    fill = component_levels(filled, 8, levels, MAX_EXTREMA, area=True, counts=lambda: euler8(filled, levels))
    if fill is None:
        return None
    # V1: per level, the largest area; ties -> the largest first-pixel index (OpenCV's list order).
    order = np.lexsort((fill["start"], fill["area2"], fill["level"]))
    lev = fill["level"][order]
    pick = order[np.flatnonzero(np.append(lev[1:] != lev[:-1], True))]
    boxes = _rect_boxes(fill["x0"][pick], fill["y0"][pick], fill["x1"][pick], fill["y1"][pick], height, width)
    return boxes, fill["level"][pick]


def sweep_boxes(
    u8: np.ndarray, levels, multi_contour: bool, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """wsolevaluation's boxes of ``u8 > t`` for every level ``t``.

    Args:
        u8: ``(H, W)`` uint8 quantised map (:func:`quantize_map`).
        levels: ``(L,)`` int levels, strictly increasing (e.g. canonical levels).
        multi_contour: False = V1 (one box, largest contour area), True = V2 (every contour).
        method: ``"auto"`` (component trees; the per-level loop for very noisy maps), ``"trees"``
            or ``"opencv"``: all exact, only the speed differs.

    Returns:
        ``(boxes, index)``: int64 ``(N, 4)`` boxes in wsolevaluation's convention and ``(N,)``
        the index into ``levels`` of each box. Every level has at least one box: the whole image
        below the map's minimum, ``(0, 0, 0, 0)`` at or above its maximum.
    """
    if method not in ("auto", "trees", "opencv"):
        raise ValueError(f"unknown method {method!r}")
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    levels = np.asarray(levels, dtype=np.int64).reshape(-1)
    if levels.size > 1 and (np.diff(levels) <= 0).any():
        raise ValueError("levels must be strictly increasing")
    height, width = u8.shape
    live = (levels >= int(u8.min())) & (levels < int(u8.max()))  # neither all nor nothing
    out = None
    if method != "opencv" and live.any():
        out = _with_trees(u8, levels[live], multi_contour)
        if out is None and method == "trees":
            raise ValueError(f"map has more than {MAX_EXTREMA} regional extrema: use method='opencv'")
    if out is None:
        out = _direct(u8, levels[live], multi_contour)
    full, empty = np.flatnonzero(levels < int(u8.min())), np.flatnonzero(levels >= int(u8.max()))
    boxes = [out[0], np.tile([[0, 0, width - 1, height - 1]], (full.size, 1)), np.zeros((empty.size, 4))]
    index = np.concatenate([np.flatnonzero(live)[out[1]], full, empty])
    return np.concatenate(boxes).astype(np.int64), index
