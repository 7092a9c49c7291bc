"""Multi-label classification metrics: average precision per class, mAP, F1."""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Non-interpolated AP of one class: mean of the precision at each positive, ranked by score.

    scores, targets: (N,). Ties are ranked by a stable sort on descending scores. NaN when no positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    if not targets.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = targets[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """(N, C) scores and multi-hot targets -> (mAP over classes with a positive, per-class AP)."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be (N, C)")
    ap = np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
    return (float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")), ap


def f1_scores(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro F1 (mean over classes with a positive or a prediction) and micro F1 at ``threshold``."""
    pred = np.asarray(probs) > threshold
    gt = np.asarray(targets) > 0
    tp = (pred & gt).sum(0).astype(np.float64)
    fp = (pred & ~gt).sum(0).astype(np.float64)
    fn = (~pred & gt).sum(0).astype(np.float64)
    denom = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, denom, out=np.full_like(tp, np.nan), where=denom > 0)
    micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "f1_macro": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"),
        "f1_micro": float(2 * tp.sum() / micro_den) if micro_den > 0 else float("nan"),
    }
