"""Seeds at image resolution to the training grid by the most common label per cell (SEC, sec.md).

Cell ``(i, j)`` of an ``(h, w)`` grid over an ``(H, W)`` image covers rows ``floor(i*H/h) ..
floor((i+1)*H/h) - 1`` and columns ``floor(j*W/w) .. floor((j+1)*W/w) - 1``; when the grid is finer than
the image a cell that would be empty covers the one pixel row/column ``floor(i*H/h)`` instead. The
unlabelled value 255 is a label like any other (a cell mostly unlabelled stays unlabelled); ties go to the
smallest label value, so a real label beats 255 on a tie. Counting uses integral images per distinct
label, so the cost is O(L * H * W) for L distinct labels, without Python loops over cells.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_bounds", "seeds_to_grid"]


def cell_bounds(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) end pixel of each of ``cells`` cells over ``size`` pixels: ``(cells,)`` each."""
    if size < 1 or cells < 1:
        raise ValueError(f"size and cells must be positive, got {size}, {cells}")
    i = np.arange(cells + 1, dtype=np.int64)
    edges = (i * size) // cells
    start = edges[:-1]
    end = np.maximum(edges[1:], start + 1)
    return start, end


def seeds_to_grid(seeds: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Most common label per grid cell.

    Args:
        seeds: integer ``(H, W)`` or ``(B, H, W)`` label maps (255 = unlabelled counts as a label).
        size: ``(h, w)`` of the grid, e.g. ``(41, 41)``.

    Returns:
        ``(h, w)`` or ``(B, h, w)``, same dtype as ``seeds``.
    """
    seeds = np.asarray(seeds)
    if not np.issubdtype(seeds.dtype, np.integer) or seeds.ndim not in (2, 3):
        raise ValueError(
            f"seeds must be an integer (H, W) or (B, H, W) array, got {seeds.dtype} {seeds.shape}"
        )
    single = seeds.ndim == 2
    batch = seeds[None] if single else seeds
    H, W = batch.shape[1:]
    h, w = size
    r0, r1 = cell_bounds(H, h)
    c0, c1 = cell_bounds(W, w)
    values = np.unique(batch)  # ascending: argmax picks the smallest label on ties
    counts = np.empty((values.size, batch.shape[0], h, w), dtype=np.int64)
    for k, value in enumerate(values):
        integral = np.zeros((batch.shape[0], H + 1, W + 1), dtype=np.int64)
        np.cumsum(np.cumsum(batch == value, axis=1), axis=2, out=integral[:, 1:, 1:])
        counts[k] = (
            integral[:, r1[:, None], c1[None, :]]
            - integral[:, r0[:, None], c1[None, :]]
            - integral[:, r1[:, None], c0[None, :]]
            + integral[:, r0[:, None], c0[None, :]]
        )
    out = values[counts.argmax(axis=0)].astype(seeds.dtype)
    return out[0] if single else out
