"""Bootstrap intervals of the localization and segmentation columns, from per-image contributions.

The evaluators (:mod:`wsl.evaluation`) give dataset-level values: MaxBoxAccV2 and PxAP from counts summed
over images, mIoU from one confusion matrix, GT-known / pointing / CorLoc as ratios over (image, class)
pairs. To resample images, one more pass scores the stored maps with the SAME evaluator classes and keeps
what each image adds to their counters (the difference of the counters before and after its ``update``);
each column is then recomputed from the summed counts of a resample (:mod:`wsl.benchmark.bootstrap`):
MaxBoxAccV2 and "mIoU tuned" re-choose their threshold in every resample. An interval is kept only when
the counts of all images give back the evaluator's own value (to 1e-9), so a table value and its interval
always describe the same images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

from wsl import io
from wsl.benchmark.bootstrap import RESAMPLES, SEED, fields, full_sample, interval, ratio
from wsl.cam.stored import load_full
from wsl.evaluation import CamMaskEvaluator, LocalizationEvaluator
from wsl.evaluation.common import READ_ERRORS
from wsl.evaluation.results import DEFAULT_PROTOCOL, LocalizationProtocol
from wsl.metrics.wsol import PxAPAccumulator

log = logging.getLogger(__name__)

Statistics = dict[str, Callable[[np.ndarray], np.ndarray]]


def _scan(ev, ds, cams_dir: Path, read, state: Callable[[], np.ndarray]) -> sparse.csr_array:
    """Sparse ``(N, D)``: what each scored image adds to ``state()`` when ``ev.update`` scores it (files
    that are absent or that the evaluator rejects are left out, as the evaluators do)."""
    rows, before = [], state()
    for i in range(len(ds)):
        path = Path(cams_dir) / f"{ds.ids[i]}.npz"
        if not io.is_complete_npz(path):
            continue
        try:
            ev.update(i, read(path))
        except READ_ERRORS:
            continue
        after = state()
        rows.append(sparse.csr_array((after - before)[None]))
        before = after
    return sparse.vstack(rows, format="csr") if rows else sparse.csr_array((0, before.size))


def localization_parts(ds, cams_dir: Path, protocol: LocalizationProtocol = DEFAULT_PROTOCOL):
    """Per-image counts of :class:`~wsl.evaluation.LocalizationEvaluator` ``(N, D)`` and the statistics
    ``{column: f(summed counts (R, D)) -> (R,)}`` that turn them into the table's columns."""
    ev, n = LocalizationEvaluator(ds, protocol), ds.num_classes
    n_iou, n_t = ev.v2.hits.shape
    n_px = 0 if ev.px is None else ev.px.pos.size

    def state() -> np.ndarray:
        loc, hits, total = ev.loc, np.zeros(n), np.zeros(n)
        for c, v in loc.class_hits.items():
            hits[c] = v
        for c, v in loc.class_total.items():
            total[c] = v
        px = [] if ev.px is None else [ev.px.pos, ev.px.neg]
        head = [loc.images, loc.top1, loc.pairs, loc.gt_known, loc.points]
        return np.concatenate([head, hits, total, ev.v2.hits.ravel(), [ev.v2.count], *px]).astype(np.float64)

    parts = _scan(ev, ds, cams_dir, load_full, state)
    v2 = 5 + 2 * n  # where the V2 hits start

    def corloc(s: np.ndarray) -> np.ndarray:
        hits, total = s[:, 5 : 5 + n], s[:, 5 + n : v2]
        return np.nanmean(np.where(total > 0, hits / total, np.nan), axis=1)

    def maxboxacc(s: np.ndarray) -> np.ndarray:
        acc = s[:, v2 : v2 + n_iou * n_t].reshape(-1, n_iou, n_t) / s[:, v2 + n_iou * n_t, None, None]
        return acc.max(axis=2).mean(axis=1)

    stats: Statistics = {
        "top1_loc_err": lambda s: 1.0 - s[:, 1] / s[:, 0],
        "gt_known_loc": ratio(3, 2),
        "pointing_game": ratio(4, 2),
        "corloc": corloc,
        "maxboxacc_v2": maxboxacc,
    }
    if n_px:
        start = v2 + n_iou * n_t + 1
        taus = ev.px.thresholds
        stats["pxap"] = lambda s: np.array(
            [_pxap(r[start : start + n_px], r[start + n_px :], taus) for r in s]
        )
    return parts, stats


def _pxap(pos: np.ndarray, neg: np.ndarray, thresholds: np.ndarray) -> float:
    """PxAP of summed histograms, by :class:`~wsl.metrics.wsol.PxAPAccumulator`'s own ``compute``."""
    acc = PxAPAccumulator(thresholds)
    acc.pos, acc.neg = pos.astype(np.int64), neg.astype(np.int64)
    return acc.compute().pxap if pos.sum() > 0 else np.nan


def miou_of(conf: np.ndarray) -> np.ndarray:
    """mIoU of confusion matrices ``(..., n, n)`` (rows ground truth) as :func:`wsl.metrics.segmentation.miou`
    computes it: a class absent from both ground truth and prediction is left out of the mean."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(axis=-2) + conf.sum(axis=-1) - tp
    return np.nanmean(np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan), axis=-1)


def mask_parts(ds, cams_dir: Path, threshold: float = 0.15, thresholds: np.ndarray | None = None):
    """Per-image confusion matrices of :class:`~wsl.evaluation.CamMaskEvaluator` (the fixed threshold and
    every swept one, as one sparse ``(N, (1 + T) * n * n)`` matrix) and the statistics of ``miou`` and
    ``miou_tuned`` (the best swept threshold, chosen again in each resample)."""
    ev = CamMaskEvaluator(ds, threshold, thresholds)
    n, t = len(ev.names), ev.thresholds.size

    def state() -> np.ndarray:
        return np.concatenate([ev.fixed.conf.ravel(), ev.sweep.confusion_matrices().ravel()])

    parts = _scan(ev, ds, cams_dir, io.load_cams, state)
    stats: Statistics = {
        "miou": lambda s: miou_of(s[:, : n * n].reshape(-1, n, n)),
        "miou_tuned": lambda s: np.nanmax(miou_of(s[:, n * n :].reshape(-1, t, n, n)), axis=1),
    }
    return parts, stats


def intervals_of(
    parts, stats: Statistics, values: dict[str, float | None], resamples: int, seed: int
) -> dict:
    """``{column_low, column_high}`` of each statistic whose value on all images matches ``values``."""
    out: dict[str, float] = {}
    for key, statistic in stats.items():
        value = values.get(key)
        if value is None or parts.shape[0] < 2:
            continue
        if not abs(full_sample(parts, statistic) - value) <= 1e-9:
            log.warning("benchmark: the per-image counts do not give back %s = %s: no interval", key, value)
            continue
        out |= fields(key, interval(parts, statistic, resamples, seed))
    return out


def quality_intervals(
    ds,
    cams_dir: Path,
    values: dict[str, float | None],
    protocol: LocalizationProtocol = DEFAULT_PROTOCOL,
    miou_threshold: float = 0.15,
    thresholds: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, float]:
    """Intervals of the localization columns (with boxes) and of ``miou`` / ``miou_tuned`` (with masks) of
    the maps in ``cams_dir``; ``values`` is the row (:func:`wsl.benchmark.quality_row`) they belong to."""
    out: dict[str, float] = {}
    if ds.has_boxes and values.get("gt_known_loc") is not None:
        out |= intervals_of(*localization_parts(ds, cams_dir, protocol), values, resamples, seed)
    if ds.has_masks and values.get("miou") is not None:
        parts, stats = mask_parts(ds, cams_dir, miou_threshold, thresholds)
        out |= intervals_of(parts, stats, values, resamples, seed)
    return out
