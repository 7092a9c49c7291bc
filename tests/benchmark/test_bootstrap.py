"""Bootstrap intervals over images: the resampling itself, means over pairs, dataset-level ratios
(MaxBoxAcc-like maxima, mIoU from confusion matrices) recomputed from per-image counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from wsl.benchmark import interval, mean_interval
from wsl.benchmark.bootstrap import fields, full_sample, percentile_interval, ratio, weights
from wsl.benchmark.per_image import intervals_of, miou_of
from wsl.metrics.segmentation import miou


def test_weights_draw_every_resample_from_all_images_with_a_fixed_seed():
    w = weights(50, 200, seed=3)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all() and (w >= 0).all()
    assert np.array_equal(w, weights(50, 200, seed=3)) and not np.array_equal(w, weights(50, 200, seed=4))


def test_mean_interval_covers_the_mean_and_shrinks_with_more_images():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.5, 0.1, 40), rng.normal(0.5, 0.1, 4000)
    lo, hi = mean_interval(small, np.ones(40))
    assert lo < small.mean() < hi and 0.02 < hi - lo < 0.1  # about 4 standard errors (0.016 each)
    lo2, hi2 = mean_interval(large, np.ones(4000))
    assert hi2 - lo2 < (hi - lo) / 5
    assert mean_interval(np.full(10, 3.0), np.full(10, 2.0)) == (1.5, 1.5)  # no spread: a point
    assert mean_interval([1.0], [1]) is None  # one image: no interval
    # pairs are resampled with their image: sums over 2 pairs per image
    assert mean_interval(np.array([1.0, 0.0, 2.0]), np.array([2, 1, 2])) == mean_interval(
        np.array([1.0, 0.0, 2.0]), np.array([2.0, 1.0, 2.0])
    )


def test_intervals_of_ratios_and_maxima_use_per_image_counts():
    rng = np.random.default_rng(1)
    hits = rng.integers(0, 2, (60, 5)).astype(float)  # per image, a hit at 5 thresholds
    parts = np.column_stack([hits, np.ones(60)])

    def best(s):  # MaxBoxAcc-like: the threshold is chosen again in each resample
        return (s[:, :5] / s[:, 5:6]).max(axis=1)

    value = float((hits.mean(0)).max())
    assert full_sample(parts, best) == pytest.approx(value)
    out = intervals_of(parts, {"x": best, "y": ratio(0, 5)}, {"x": value, "y": hits[:, 0].mean()}, 300, 0)
    assert out["x_low"] < value <= out["x_high"] and out["y_low"] < hits[:, 0].mean() < out["y_high"]
    # a value the counts do not give back gets no interval (e.g. the evaluator saw other images)
    assert intervals_of(parts, {"x": best}, {"x": value + 0.1}, 300, 0) == {}
    assert intervals_of(sparse.csr_array(parts), {"x": best}, {"x": value}, 300, 0) == {
        k: v for k, v in out.items() if k.startswith("x")
    }


def test_miou_of_stacks_matches_the_metric():
    rng = np.random.default_rng(2)
    conf = rng.integers(0, 50, (4, 3, 3))
    conf[1, 2, :] = conf[1, :, 2] = 0  # a class absent from both: left out of the mean
    assert miou_of(conf) == pytest.approx([miou(c).miou for c in conf])


def test_percentile_interval_and_fields():
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan] * 8 + [1.0, 2.0])) is None  # mostly undefined
    assert fields("pxap", (0.1, 0.2)) == {"pxap_low": 0.1, "pxap_high": 0.2} and fields("pxap", None) == {}
    assert interval(np.ones((5, 2)), ratio(0, 1), resamples=0) is None
