"""Pixel pairs within a radius on a feature grid, and their inter-pixel labels (Ahn et al., CVPR 2019).

IRN (and PSA, Ahn & Kwak, CVPR 2018) relate every grid cell to the cells within a radius ``r``. Each
unordered pair is listed once, by its offset ``(dy, dx)`` from the first cell to the second, taken from
the half plane ``dy > 0`` or ``dy == 0, dx > 0`` with ``0 < dy^2 + dx^2 < r^2`` (IRN's search directions,
``misc/indexing.py``). Per-offset arrays are ``(D, H, W)``: entry ``[d, y, x]`` is the pair from cell
``(y, x)`` to cell ``(y + dy, x + dx)``; pairs whose second cell leaves the grid are invalid.

The boundary path of an offset is IRN's: the cells of the box spanned by the two cells whose distance to
the line through them is below one cell; a pair's affinity is one minus the largest boundary score on it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "IGNORE",
    "PairLabels",
    "boundary_affinity",
    "feature_affinity",
    "offsets",
    "pair_labels",
    "path_cells",
    "shifted",
    "valid_pairs",
]

IGNORE = 255


@lru_cache(maxsize=32)
def offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """The half-plane offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 < radius^2``, row by row.

    IRN uses radius 10 in training and 5 at inference (34 offsets, so 68 neighbours per cell).
    """
    if radius < 2:
        raise ValueError(f"radius must be at least 2 (pairs of neighbouring cells), got {radius}")
    out = [(0, dx) for dx in range(1, radius)]
    out += [
        (dy, dx)
        for dy in range(1, radius)
        for dx in range(-radius + 1, radius)
        if dy * dy + dx * dx < radius * radius
    ]
    return tuple(out)


@lru_cache(maxsize=1024)
def path_cells(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """Cells ``(y, x)`` relative to the first cell that lie on the way to ``(dy, dx)`` (both ends included).

    IRN's rule: a cell of the bounding box of the two cells is on the path when its distance to the line
    through them is below one cell, ``(dy * x - dx * y)^2 / (dy^2 + dx^2) < 1``.
    """
    if dy == 0 and dx == 0:
        raise ValueError("a path needs two different cells")
    length_sq = dy * dy + dx * dx
    ys = range(min(0, dy), max(0, dy) + 1)
    xs = range(min(0, dx), max(0, dx) + 1)
    return tuple((y, x) for y in ys for x in xs if (dy * x - dx * y) ** 2 < length_sq)


def valid_pairs(size_hw: tuple[int, int], radius: int) -> np.ndarray:
    """bool ``(D, H, W)``: whether the second cell of each pair lies on the grid."""
    h, w = size_hw
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([(ys + dy < h) & (xs + dx >= 0) & (xs + dx < w) for dy, dx in offsets(radius)]).reshape(
        -1, h, w
    )


def shifted(values: np.ndarray, dy: int, dx: int, fill: int) -> np.ndarray:
    """``out[y, x] = values[y + dy, x + dx]`` where that cell exists, else ``fill``; ``values`` is (H, W)."""
    h, w = values.shape
    out = np.full_like(values, fill)
    if dy >= h or abs(dx) >= w:
        return out
    src = values[dy:, max(dx, 0) : w + min(dx, 0)]
    out[: h - dy, max(-dx, 0) : w - max(dx, 0)] = src
    return out


class PairLabels:
    """Inter-pixel labels of one grid, each bool ``(D, H, W)`` over :func:`offsets` (IRN, Sec. 3.2)."""

    def __init__(self, bg_pos: np.ndarray, fg_pos: np.ndarray, neg: np.ndarray) -> None:
        self.bg_pos, self.fg_pos, self.neg = bg_pos, fg_pos, neg

    def stack(self) -> np.ndarray:
        """bool ``(3, D, H, W)``: background-positive, foreground-positive, negative."""
        return np.stack([self.bg_pos, self.fg_pos, self.neg])


def pair_labels(labels: np.ndarray, radius: int) -> PairLabels:
    """IRN's inter-pixel labels from a label map of confident regions on the grid.

    A pair is used when both cells carry a label (not 255, nor off the grid): positive when the labels are
    equal (background-positive for label 0, foreground-positive otherwise), negative when they differ.

    Args:
        labels: uint8 ``(H, W)``: 0 background, ``k > 0`` a class, 255 unsure.
        radius: pairs with ``dy^2 + dx^2 < radius^2``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer (H, W) map, got {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64)
    sure = labels != IGNORE
    bg_pos, fg_pos, neg = [], [], []
    for dy, dx in offsets(radius):
        other = shifted(labels, dy, dx, IGNORE)
        valid = sure & (other != IGNORE)
        same = valid & (labels == other)
        bg_pos.append(same & (labels == 0))
        fg_pos.append(same & (labels > 0))
        neg.append(valid & (labels != other))
    return PairLabels(np.stack(bg_pos), np.stack(fg_pos), np.stack(neg))


def boundary_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """IRN's affinities from a class-boundary map: ``a_ij = 1 - max_{k on the path i -> j} B_k``.

    The map is padded with 1 (a certain boundary) outside the grid, as IRN does, so that a pair whose
    second cell leaves the grid gets affinity 0.

    Args:
        boundary: ``(B, H, W)`` boundary probabilities in [0, 1].

    Returns:
        ``(B, D, H, W)`` affinities over :func:`offsets` (differentiable).
    """
    b, h, w = boundary.shape
    r = radius
    padded = torch.nn.functional.pad(boundary, (r, r, 0, r), value=1.0)
    out = []
    for dy, dx in offsets(radius):
        cells = [padded[:, y : y + h, r + x : r + x + w] for y, x in path_cells(dy, dx)]
        out.append(1 - torch.stack(cells).amax(0))
    return torch.stack(out, 1)


def feature_affinity(features: torch.Tensor, radius: int) -> torch.Tensor:
    """PSA's affinities from an embedding, ``a_ij = exp(-mean_c |f_ci - f_cj|)`` (Ahn & Kwak, CVPR 2018).

    Pairs whose second cell leaves the grid get affinity 0.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, D, H, W)`` affinities over :func:`offsets` (differentiable).
    """
    b, c, h, w = features.shape
    r = radius
    padded = torch.nn.functional.pad(features, (r, r, 0, r))
    valid = torch.from_numpy(valid_pairs((h, w), radius)).to(features.device)
    out = []
    for dy, dx in offsets(radius):
        other = padded[:, :, dy : dy + h, r + dx : r + dx + w]
        out.append(torch.exp(-(features - other).abs().mean(1)))
    return torch.stack(out, 1) * valid
