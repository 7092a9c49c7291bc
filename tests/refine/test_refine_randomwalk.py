"""The sparse random walk against IRN's dense construction (dense matrix powers) on small grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl.refine.pairs import offsets
from wsl.refine.randomwalk import affinity_matrix, random_walk, rw_scores, transition_matrix


def _dense_affinity(aff: np.ndarray, radius: int, beta: float) -> np.ndarray:
    """IRN's ``affinity_sparse2dense`` as a loop over cell pairs: a^beta both ways, 1 on the diagonal."""
    _, h, w = aff.shape
    a = np.eye(h * w)
    for d, (dy, dx) in enumerate(offsets(radius)):
        for y in range(h):
            for x in range(w):
                if y + dy < h and 0 <= x + dx < w:
                    i, j = y * w + x, (y + dy) * w + x + dx
                    a[i, j] = a[j, i] = aff[d, y, x] ** beta
    return a


def _dense_walk(maps: np.ndarray, aff: np.ndarray, radius: int, beta: float, exp_times: int, boundary=None):
    """IRN's ``to_transition_matrix`` + ``propagate_to_edge``: column-normalised T, squared exp_times times,
    ``x @ T``."""
    k, h, w = maps.shape
    a = _dense_affinity(aff, radius, beta)
    t = a / a.sum(axis=0, keepdims=True)
    for _ in range(exp_times):
        t = t @ t
    x = maps if boundary is None else maps * (1 - boundary)
    return (x.reshape(k, -1) @ t).reshape(k, h, w)


@pytest.mark.parametrize(("h", "w", "radius", "beta", "exp_times"), [(6, 7, 3, 10.0, 4), (9, 8, 5, 10.0, 8)])
def test_random_walk_equals_dense_matrix_powers(h, w, radius, beta, exp_times):
    rng = np.random.default_rng(h * w)
    aff = rng.uniform(0.3, 1.0, size=(len(offsets(radius)), h, w))
    maps = rng.random((2, h, w))
    boundary = rng.random((h, w)) * 0.5
    want = _dense_walk(maps, aff, radius, beta, exp_times, boundary)
    got = random_walk(torch.from_numpy(maps), torch.from_numpy(aff), radius, beta, exp_times,
                      torch.from_numpy(boundary))  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)
    m32, a32, b32 = (torch.from_numpy(v).float() for v in (maps, aff, boundary))
    got32 = random_walk(m32, a32, radius, beta, exp_times, b32)
    np.testing.assert_allclose(got32.numpy(), want, atol=1e-5, rtol=0)


def test_matrices_are_symmetric_and_stochastic():
    rng = np.random.default_rng(3)
    aff = torch.from_numpy(rng.random((len(offsets(4)), 5, 6)))
    a = affinity_matrix(aff, 4, 2.0).to_dense().numpy()
    np.testing.assert_allclose(a, _dense_affinity(aff.numpy(), 4, 2.0), atol=1e-12)
    t = transition_matrix(aff, 4, 2.0).to_dense().numpy()
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(t, a / a.sum(1, keepdims=True), atol=1e-12)


def test_walk_stays_inside_a_closed_boundary():
    # affinity 0 across the middle column: mass on the left half never reaches the right half
    h, w, r = 4, 6, 3
    aff = np.ones((len(offsets(r)), h, w))
    for d, (_, dx) in enumerate(offsets(r)):
        for x in range(w):
            if (x < 3) != (x + dx < 3):
                aff[d, :, x] = 0.0
    maps = np.zeros((1, h, w))
    maps[0, :, 0] = 1.0
    got = random_walk(torch.from_numpy(maps), torch.from_numpy(aff), r, 10.0, 6).numpy()
    assert np.all(got[0, :, 3:] == 0) and got[0, :, :3].min() > 0


def test_rw_scores_background_plane_and_argmax():
    walked = torch.zeros(2, 2, 2)
    walked[0, 0, 0] = 4.0
    walked[1, 1, 1] = 1.0
    s = rw_scores(walked, (7, 6), 0.25)
    assert s.shape == (3, 7, 6)
    assert np.all(s[0] == 0.25) and s[1:].max() == pytest.approx(1.0)
    labels = s.argmax(0)
    assert labels[0, 0] == 1 and labels[-1, -1] == 0  # class 2 peaks at 1/4 of the max: the plane wins ties
