"""Bootstrap 95 % intervals over images (percentile bootstrap, Efron & Tibshirani 1993, ch. 13).

A score is recomputed on ``resamples`` resamples of the images drawn with replacement, and the interval
is the 2.5th and 97.5th percentile of those values. The images are the unit: a score averaged over
(image, class) pairs, or a ratio of counts summed over images (MaxBoxAcc, PxAP, mIoU from one confusion
matrix), is recomputed from the per-image counts of each resample, so a dataset-level ratio is resampled
as it is computed. Every method is resampled with the same seed, i.e. on the same resampled image sets.
The point estimate stays the one computed on all images.

``parts`` is ``(N, D)``: row ``i`` holds image ``i``'s additive contributions (counts, sums); a
``statistic`` maps summed rows ``(R, D)`` to ``(R,)`` scores. A resample's sums are ``w @ parts`` with
``w`` ``(R, N)`` the number of times each image is drawn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import sparse

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
LOW, HIGH = "_low", "_high"  # suffixes of the interval's fields in rows, results.json and benchmark.csv

Statistic = Callable[[np.ndarray], np.ndarray]


def weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, n)`` float64: how many times each of ``n`` images is drawn in each resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def resampled_sums(parts: np.ndarray | sparse.spmatrix | sparse.sparray, w: np.ndarray) -> np.ndarray:
    """``(R, D)`` sums of the rows of ``parts`` ``(N, D)`` (dense or SciPy sparse) weighted by ``w``
    ``(R, N)``."""
    if sparse.issparse(parts):
        return np.asarray((parts.T @ w.T).T)
    return w @ np.asarray(parts, dtype=np.float64)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """The central ``level`` interval of the finite ``values``; None when fewer than half are finite
    (e.g. most resamples have no pair to average)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < max(2, np.size(values) // 2):
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def quiet(statistic: Statistic, sums: np.ndarray) -> np.ndarray:
    """``statistic(sums)`` with NumPy's warnings about empty means and 0 / 0 silenced (they give NaN,
    which :func:`percentile_interval` leaves out)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(statistic(sums), dtype=np.float64)


def interval(
    parts: np.ndarray | sparse.spmatrix | sparse.sparray,
    statistic: Statistic,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk: int = 100,
) -> tuple[float, float] | None:
    """The bootstrap interval of ``statistic`` over the images (rows) of ``parts``; None with fewer than
    two images or no resample. Resamples are summed ``chunk`` at a time (bounded memory)."""
    n = parts.shape[0]
    if n < 2 or resamples < 1:
        return None
    w = weights(n, resamples, seed)
    values = [quiet(statistic, resampled_sums(parts, w[k : k + chunk])) for k in range(0, resamples, chunk)]
    return percentile_interval(np.concatenate(values))


def full_sample(parts: np.ndarray | sparse.spmatrix | sparse.sparray, statistic: Statistic) -> float:
    """``statistic`` on all images once (what the interval's point estimate is)."""
    return float(quiet(statistic, resampled_sums(parts, np.ones((1, parts.shape[0]))))[0])


def ratio(num: int, den: int) -> Statistic:
    """The statistic ``sums[:, num] / sums[:, den]`` (a mean over pairs when ``den`` counts them)."""
    return lambda s: s[:, num] / s[:, den]


def mean_interval(
    sums: np.ndarray, counts: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float] | None:
    """Interval of ``sum(sums) / sum(counts)`` over images: per image, the sum of its values and how many
    there are (a mean over (image, class) pairs, resampled by image)."""
    parts = np.column_stack([np.asarray(sums, np.float64), np.asarray(counts, np.float64)])
    return interval(parts, ratio(0, 1), resamples, seed)


def fields(key: str, iv: tuple[float, float] | None) -> dict[str, float]:
    """``{key_low: lo, key_high: hi}``, or nothing when there is no interval."""
    return {} if iv is None else {key + LOW: iv[0], key + HIGH: iv[1]}
