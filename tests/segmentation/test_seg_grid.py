"""Seeds to the training grid by the most common label per cell, against hand cases and a loop."""

import numpy as np
import pytest

from wsl.segmentation.grid import cell_bounds, seeds_to_grid

U = 255


def loop_reference(seeds, h, w):
    H, W = seeds.shape
    out = np.empty((h, w), dtype=seeds.dtype)
    for i in range(h):
        r0 = i * H // h
        r1 = max((i + 1) * H // h, r0 + 1)
        for j in range(w):
            c0 = j * W // w
            c1 = max((j + 1) * W // w, c0 + 1)
            values, counts = np.unique(seeds[r0:r1, c0:c1], return_counts=True)
            out[i, j] = values[np.argmax(counts)]  # unique is sorted: the smallest label wins ties
    return out


def test_hand_case_with_255_majority_and_ties():
    seeds = np.array(
        [
            [1, 1, U, U],
            [1, 0, U, 2],
            [3, 3, 0, 0],
            [U, U, 2, 2],
        ],
        dtype=np.uint8,
    )
    out = seeds_to_grid(seeds, (2, 2))
    # top-left: 1 x3; top-right: 255 x3 (unlabelled majority stays unlabelled);
    # bottom-left: 3 x2 vs 255 x2 -> tie, smaller label 3; bottom-right: 0 x2 vs 2 x2 -> 0
    np.testing.assert_array_equal(out, [[1, U], [3, 0]])
    assert out.dtype == np.uint8


def test_uneven_cells_use_floor_boundaries():
    seeds = np.zeros((5, 3), dtype=np.uint8)
    seeds[2:, :] = 7  # rows 2-4 form the second cell: floor(1 * 5 / 2) = 2
    seeds[1, :] = 7  # row 1 is in the first cell, which is 0 x3 vs 7 x3 -> tie -> 0
    np.testing.assert_array_equal(seeds_to_grid(seeds, (2, 1)), [[0], [7]])
    start, end = cell_bounds(5, 2)
    np.testing.assert_array_equal(start, [0, 2])
    np.testing.assert_array_equal(end, [2, 5])


@pytest.mark.parametrize(
    ("shape", "grid"), [((64, 48), (41, 41)), ((321, 321), (41, 41)), ((37, 53), (7, 9)), ((3, 4), (5, 7))]
)
def test_matches_loop_reference(shape, grid):
    rng = np.random.default_rng(sum(shape))
    seeds = rng.choice(np.array([0, 1, 5, U], dtype=np.uint8), size=shape, p=[0.3, 0.2, 0.1, 0.4])
    np.testing.assert_array_equal(seeds_to_grid(seeds, grid), loop_reference(seeds, *grid))


def test_batch_and_no_mutation():
    rng = np.random.default_rng(1)
    batch = rng.choice(np.array([0, 2, U], dtype=np.int64), size=(3, 20, 30))
    before = batch.copy()
    out = seeds_to_grid(batch, (4, 6))
    assert out.shape == (3, 4, 6) and out.dtype == np.int64
    for b in range(3):
        np.testing.assert_array_equal(out[b], loop_reference(batch[b], 4, 6))
    np.testing.assert_array_equal(batch, before)
    with pytest.raises(ValueError):
        seeds_to_grid(batch.astype(float), (4, 6))
