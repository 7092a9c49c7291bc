"""Pairs within a radius, IRN's inter-pixel labels and the two affinity forms, against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl.refine.pairs import (
    IGNORE,
    boundary_affinity,
    feature_affinity,
    offsets,
    pair_labels,
    path_cells,
    valid_pairs,
)


def test_offsets_are_the_half_disc_of_irn():
    # IRN (misc/indexing.py): radius 5 -> 4 + 9 + 9 + 7 + 5 = 34 search directions (68 neighbours)
    assert len(offsets(5)) == 34
    assert offsets(2) == ((0, 1), (1, -1), (1, 0), (1, 1))
    for r in (3, 5, 10):
        offs = set(offsets(r))
        disc = {(y, x) for y in range(-r, r + 1) for x in range(-r, r + 1) if 0 < y * y + x * x < r * r}
        assert offs | {(-y, -x) for y, x in offs} == disc  # every unordered pair exactly once
        assert not offs & {(-y, -x) for y, x in offs}
    with pytest.raises(ValueError):
        offsets(1)


def test_path_cells_by_hand():
    assert path_cells(0, 3) == ((0, 0), (0, 1), (0, 2), (0, 3))
    # the diagonal (2, 2): cells of the box within distance 1 of the line y = x, i.e. |x - y| <= 1
    assert set(path_cells(2, 2)) == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)}
    # (1, -2): distance to the line x = -2y is |x + 2y| / sqrt(5) < 1, so |x + 2y| <= 2: the whole 2x3 box
    assert set(path_cells(1, -2)) == {(y, x) for y in (0, 1) for x in (-2, -1, 0)}
    # (2, -4): |2x + 4y| / sqrt(20) < 1, so |x + 2y| <= 2: 3 + 5 + 3 cells
    row0, row1, row2 = (
        [(0, x) for x in (0, -1, -2)],
        [(1, x) for x in range(-4, 1)],
        [(2, x) for x in (-2, -3, -4)],
    )
    assert set(path_cells(2, -4)) == {*row0, *row1, *row2}


def test_pair_labels_on_a_hand_made_map():
    labels = np.array([[0, 0, 1], [IGNORE, 1, 1]], dtype=np.uint8)
    pl = pair_labels(labels, 2)  # offsets (0,1), (1,-1), (1,0), (1,1)
    # (0,1): 0-0 bg+, 0-1 neg; row 1: 255-1 unused, 1-1 fg+
    assert pl.bg_pos[0].tolist() == [[True, False, False], [False, False, False]]
    assert pl.neg[0].tolist() == [[False, True, False], [False, False, False]]
    assert pl.fg_pos[0].tolist() == [[False, False, False], [False, True, False]]
    # (1,-1): (0,1)->(1,0) is 0-255 unused, (0,2)->(1,1) 1-1 fg+
    assert pl.fg_pos[1].tolist() == [[False, False, True], [False, False, False]]
    assert not pl.neg[1].any() and not pl.bg_pos[1].any()
    # (1,0): (0,0)->(1,0) unused, (0,1)->(1,1) 0-1 neg, (0,2)->(1,2) 1-1 fg+
    assert pl.neg[2].tolist() == [[False, True, False], [False, False, False]]
    assert pl.fg_pos[2].tolist() == [[False, False, True], [False, False, False]]
    # (1,1): (0,0)->(1,1) 0-1 neg, (0,1)->(1,2) 0-1 neg
    assert pl.neg[3].tolist() == [[True, True, False], [False, False, False]]
    assert pl.stack().shape == (3, 4, 2, 3)


def _brute_labels(labels: np.ndarray, radius: int) -> np.ndarray:
    h, w = labels.shape
    out = np.zeros((3, len(offsets(radius)), h, w), bool)
    for d, (dy, dx) in enumerate(offsets(radius)):
        for y in range(h):
            for x in range(w):
                y2, x2 = y + dy, x + dx
                if not (0 <= y2 < h and 0 <= x2 < w):
                    continue
                a, b = int(labels[y, x]), int(labels[y2, x2])
                if IGNORE in (a, b):
                    continue
                out[0 if a == b == 0 else 1 if a == b else 2, d, y, x] = True
    return out


def test_pair_labels_match_a_loop_over_pairs():
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 1, 3, IGNORE], np.uint8), size=(7, 9))
    np.testing.assert_array_equal(pair_labels(labels, 4).stack(), _brute_labels(labels, 4))


def _brute_boundary(b: np.ndarray, radius: int) -> np.ndarray:
    h, w = b.shape
    out = np.zeros((len(offsets(radius)), h, w))
    for d, (dy, dx) in enumerate(offsets(radius)):
        for y in range(h):
            for x in range(w):
                if not (y + dy < h and 0 <= x + dx < w):
                    continue  # affinity 0 to a cell off the grid
                out[d, y, x] = 1 - max(b[y + py, x + px] for py, px in path_cells(dy, dx))
    return out


def test_boundary_affinity_is_one_minus_the_max_on_the_path():
    b = np.random.default_rng(1).random((6, 8))
    got = boundary_affinity(torch.from_numpy(b)[None], 4)[0].numpy()
    np.testing.assert_allclose(got, _brute_boundary(b, 4), atol=1e-12)


def test_feature_affinity_is_psa_exp_l1():
    f = np.random.default_rng(2).normal(size=(3, 5, 6))
    got = feature_affinity(torch.from_numpy(f)[None], 3)[0].numpy()
    valid = valid_pairs((5, 6), 3)
    for d, (dy, dx) in enumerate(offsets(3)):
        for y in range(5):
            for x in range(6):
                want = np.exp(-np.abs(f[:, y, x] - f[:, y + dy, x + dx]).mean()) if valid[d, y, x] else 0.0
                assert got[d, y, x] == pytest.approx(want, abs=1e-12)
