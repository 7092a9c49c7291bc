"""Random walk with learned affinities (Ahn & Kwak, CVPR 2018, Sec. 3.4; Ahn et al., CVPR 2019, Sec. 3.4).

The affinity matrix ``A`` holds ``a_ij^beta`` for the pairs within the radius (both directions) and 1 on
the diagonal; the transition matrix is ``T = D^-1 A`` with ``D`` the row sums. IRN builds ``T`` densely
and squares it ``exp_times`` times, then multiplies the CAMs by ``T^(2^exp_times)``; here the same
``2^exp_times`` steps are applied as sparse products ``v <- T v`` on the grid (about 69 non-zeros per row
at radius 5), which is exact and needs neither the dense ``N x N`` matrix nor its cubic-cost powers.

IRN writes ``x T_c`` with a column-normalised ``T_c = A D^-1``; as ``A`` is symmetric, ``(x T_c)^T =
D^-1 A x^T``, the same walk.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from wsl.refine.affinity_net import STRIDE
from wsl.refine.pairs import offsets

__all__ = ["affinity_matrix", "propagate", "random_walk", "rw_scores", "transition_matrix"]


def _edges(size_hw: tuple[int, int], radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first cell, second cell, flat index into ``(D, H, W)``) of every on-grid pair, row-major cells."""
    h, w = size_hw
    ys, xs = np.mgrid[0:h, 0:w]
    src, dst, which = [], [], []
    for d, (dy, dx) in enumerate(offsets(radius)):
        ok = (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        i = (ys * w + xs)[ok]
        src.append(i)
        dst.append(i + dy * w + dx)
        which.append(d * h * w + i)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(which)


@lru_cache(maxsize=16)
def _structure(h: int, w: int, radius: int) -> tuple[torch.Tensor, ...]:
    """The CSR pattern of ``A`` for an ``h x w`` grid, computed once per grid size.

    Returns ``crow (N+1,)``, ``col (nnz,)``, ``row (nnz,)`` and ``source (nnz,)``: where each stored entry
    takes its value from, an index into ``(D*H*W affinities, then N ones for the diagonal)``.
    """
    n = h * w
    src, dst, which = _edges((h, w), radius)
    diag = np.arange(n)
    rows = np.concatenate([src, dst, diag])
    cols = np.concatenate([dst, src, diag])
    source = np.concatenate([which, which, len(offsets(radius)) * n + diag])
    order = np.lexsort((cols, rows))  # row-major, columns ascending within a row (CSR)
    rows, cols, source = rows[order], cols[order], source[order]
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    return tuple(
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (crow, cols, rows, source)
    )


def _pattern(affinity: torch.Tensor, radius: int, beta: float) -> tuple[torch.Tensor, ...]:
    d, h, w = affinity.shape
    if d != len(offsets(radius)):
        raise ValueError(f"affinity has {d} offsets, radius {radius} has {len(offsets(radius))}")
    crow, col, row, source = (t.to(affinity.device) for t in _structure(h, w, radius))
    ones = torch.ones(h * w, dtype=affinity.dtype, device=affinity.device)
    values = torch.cat([affinity.reshape(-1).clamp(0, 1).pow(beta), ones])[source]
    return crow, col, row, values


def affinity_matrix(affinity: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """The symmetric ``A`` (sparse CSR ``(N, N)``, N = H * W): ``a_ij^beta`` for the on-grid pairs within
    ``radius`` (both directions), 1 on the diagonal, 0 elsewhere.

    Args:
        affinity: ``(D, H, W)`` pair affinities in [0, 1] over :func:`wsl.refine.pairs.offsets` (radius).
    """
    crow, col, _, values = _pattern(affinity, radius, beta)
    n = crow.numel() - 1
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, (n, n), check_invariants=False)


def transition_matrix(affinity: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """``T = D^-1 A`` as a sparse CSR ``(N, N)`` matrix, each row summing to one (N = H * W)."""
    crow, col, row, values = _pattern(affinity, radius, beta)
    n = crow.numel() - 1
    degree = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, row, values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values / degree[row], (n, n), check_invariants=False)


def propagate(transition: torch.Tensor, x: torch.Tensor, steps: int) -> torch.Tensor:
    """``T^steps x`` for ``x`` ``(N, C)``, as ``steps`` sparse products."""
    for _ in range(steps):
        x = transition @ x
    return x


def random_walk(
    maps: torch.Tensor,
    affinity: torch.Tensor,
    radius: int = 5,
    beta: float = 10.0,
    exp_times: int = 8,
    boundary: torch.Tensor | None = None,
) -> torch.Tensor:
    """IRN's propagation of class maps on the affinity grid (``indexing.propagate_to_edge``).

    Args:
        maps: ``(K, H, W)`` class maps on the grid (IRN: the max-normalised stride-4 CAMs).
        affinity: ``(D, H, W)`` pair affinities over the offsets of ``radius``.
        beta: power of the affinities (IRN: 10; PSA: 8).
        exp_times: ``2^exp_times`` steps (IRN, PSA: 8, i.e. 256).
        boundary: ``(H, W)`` boundary map: IRN first multiplies the maps by ``1 - boundary``.

    Returns:
        ``(K, H, W)`` propagated maps (float32 or the maps' dtype).
    """
    k, h, w = maps.shape
    if affinity.shape[1:] != (h, w):
        raise ValueError(f"affinity grid {tuple(affinity.shape[1:])} != map grid {(h, w)}")
    if exp_times < 0:
        raise ValueError(f"exp_times must be >= 0, got {exp_times}")
    if boundary is not None:
        maps = maps * (1 - boundary)
    t = transition_matrix(affinity.to(maps.dtype), radius, beta)
    x = maps.reshape(k, h * w).T.contiguous()
    return propagate(t, x, 2**exp_times).T.reshape(k, h, w)


def rw_scores(walked: torch.Tensor, size_hw: tuple[int, int], bg_threshold: float = 0.25) -> np.ndarray:
    """IRN's scores at image resolution from the walked maps (``step/make_sem_seg_labels.py``).

    The ``(K, h, w)`` grid maps are upsampled x4 (bilinear, ``align_corners=False``), cropped to the image,
    divided by their overall maximum, and a constant background plane ``bg_threshold`` (IRN: 0.25) is put
    first; ``argmax`` over the result is the pseudo-label (index 0 background, k + 1 the k-th map).

    Returns:
        float32 ``(K + 1, H, W)``.
    """
    h, w = size_hw
    k = walked.shape[0]
    up = F.interpolate(walked[:, None].float(), scale_factor=STRIDE, mode="bilinear", align_corners=False)
    up = up[:, 0, :h, :w]
    if up.shape[1:] != (h, w):
        raise ValueError(f"walked maps {tuple(walked.shape)} do not cover an image of {h}x{w}")
    peak = up.max() if k else torch.tensor(0.0)
    up = up / peak if peak > 0 else torch.zeros_like(up)
    plane = torch.full((1, h, w), float(bg_threshold))
    return torch.cat([plane, up]).numpy()
