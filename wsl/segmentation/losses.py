"""SEC's losses: seeding, expansion (global weighted rank pooling) and constrain-to-boundary.

Kolesnikov & Lampert, "Seed, Expand and Constrain", ECCV 2016, Sec. 3 (equations (2)-(5)); constants and
normalisations follow the authors' Caffe layers. ``f`` are the network's probabilities ``(B, C, H, W)``
with class 0 the background, floored by :func:`prob_floor` so that ``log f`` stays finite.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ExpansionTerms",
    "constrain_loss",
    "decay_for_grid",
    "expansion_loss",
    "gwrp",
    "prob_floor",
    "seeding_loss",
    "seeds_to_onehot",
]

SEC_GRID_POSITIONS = 41 * 41  # the decays d+, d-, d_bg of SEC are tuned for n = 1681


def prob_floor(logits: torch.Tensor, floor: float = 1e-4) -> torch.Tensor:
    """``softmax(logits) + floor`` renormalised over the classes (dim 1): ``(B, C, H, W) -> (B, C, H, W)``."""
    p = torch.softmax(logits, dim=1) + floor
    return p / p.sum(dim=1, keepdim=True)


def decay_for_grid(d: float, n: int) -> float:
    """The decay that keeps SEC's effective GWRP weighting on a grid of ``n`` positions: ``d^(1681/n)``."""
    if not 0 <= d <= 1:
        raise ValueError(f"d must lie in [0, 1], got {d}")
    return float(d ** (SEC_GRID_POSITIONS / n))


def gwrp(probs: torch.Tensor, d: float) -> torch.Tensor:
    """Global weighted rank pooling, SEC eq. (4).

    Sort each class's positions by descending ``f``; ``G_c = sum_j d^(j-1) f_(j) / sum_j d^(j-1)``.
    ``d = 0`` is max pooling (``0^0 = 1``), ``d = 1`` average pooling.

    Args:
        probs: ``(B, C, H, W)``.
        d: decay in ``[0, 1]``.

    Returns:
        ``(B, C)``.
    """
    if not 0 <= d <= 1:
        raise ValueError(f"d must lie in [0, 1], got {d}")
    flat = probs.flatten(2)
    ranked = flat.sort(dim=2, descending=True).values
    weights = torch.tensor(d, dtype=torch.float64) ** torch.arange(flat.shape[2], dtype=torch.float64)
    weights = (weights / weights.sum()).to(device=probs.device, dtype=probs.dtype)
    return (ranked * weights).sum(dim=2)


def seeds_to_onehot(seeds: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Label seeds ``(B, H, W)`` (``ignore_index`` = no cue) to a one-hot float ``(B, C, H, W)`` mask."""
    if seeds.dtype.is_floating_point or seeds.ndim != 3:
        raise ValueError(f"label seeds must be an integer (B, H, W) tensor, got {seeds.dtype} {seeds.shape}")
    labelled = seeds != ignore_index
    if ((seeds[labelled] < 0) | (seeds[labelled] >= num_classes)).any():
        raise ValueError(f"seed labels must lie in [0, {num_classes}) or be {ignore_index}")
    index = torch.where(labelled, seeds, torch.zeros_like(seeds)).long()
    onehot = F.one_hot(index, num_classes).permute(0, 3, 1, 2)
    return (onehot * labelled.unsqueeze(1)).float()


def seeding_loss(log_probs: torch.Tensor, seeds: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """SEC eq. (2): ``-(1 / sum_c |S_c|) sum_c sum_{u in S_c} log f_{u,c}`` per image, then batch mean.

    Background seeds count as a class. An image without any seed contributes 0 to the batch mean.

    Args:
        log_probs: ``(B, C, H, W)`` log of the floored probabilities.
        seeds: one-hot cues ``(B, C, H, W)`` (0/1, several classes per location allowed) or integer labels
            ``(B, H, W)`` with ``ignore_index`` where there is no cue.

    Returns:
        scalar.
    """
    if seeds.ndim == 3:
        seeds = seeds_to_onehot(seeds, log_probs.shape[1], ignore_index)
    if seeds.shape != log_probs.shape:
        raise ValueError(f"seeds {tuple(seeds.shape)} do not match log_probs {tuple(log_probs.shape)}")
    seeds = seeds.to(device=log_probs.device, dtype=log_probs.dtype)
    count = seeds.sum(dim=(1, 2, 3))
    total = (seeds * log_probs).sum(dim=(1, 2, 3))
    return -(total / count.clamp(min=1)).mean()


class ExpansionTerms(NamedTuple):
    """The expansion loss and its three terms (each already averaged over the batch)."""

    total: torch.Tensor
    present: torch.Tensor  # -(1/|T|) sum_{c in T} log G_c(d+)
    absent: torch.Tensor  # -(1/|C'\T|) sum_{c in C'\T} log(1 - G_c(d-))
    background: torch.Tensor  # -log G_bg(d_bg)


def expansion_loss(
    probs: torch.Tensor,
    labels: torch.Tensor,
    d_pos: float = 0.996,
    d_neg: float = 0.0,
    d_bg: float = 0.999,
    return_terms: bool = False,
) -> torch.Tensor | ExpansionTerms:
    """SEC eq. (3) with GWRP: the present classes should appear, the absent ones not, background always.

    The decays are SEC's for a 41x41 grid; rescale them with :func:`decay_for_grid` on other grids.
    Each term is normalised per image by its number of classes (an empty set contributes 0), then averaged
    over the batch.

    Args:
        probs: ``(B, C, H, W)`` floored probabilities, class 0 background.
        labels: ``(B, C - 1)`` multi-hot image labels of the foreground classes 1..C-1.
        return_terms: return an :class:`ExpansionTerms` instead of the total.

    Returns:
        scalar total ``present + absent + background`` (or the named terms).
    """
    if labels.shape != (probs.shape[0], probs.shape[1] - 1):
        raise ValueError(
            f"labels must be (B, C - 1) = {(probs.shape[0], probs.shape[1] - 1)} multi-hot over the "
            f"foreground classes, got {tuple(labels.shape)}"
        )
    fg = probs[:, 1:]
    present = labels.to(device=probs.device, dtype=probs.dtype)
    absent = 1 - present
    g_pos = gwrp(fg, d_pos)
    g_neg = gwrp(fg, d_neg)
    g_bg = gwrp(probs[:, :1], d_bg)[:, 0]
    # Zero the unused entries before the log so that no NaN or inf reaches the gradient.
    log_pos = torch.log(torch.where(present > 0, g_pos, torch.ones_like(g_pos)))
    log_neg = torch.log1p(-torch.where(absent > 0, g_neg, torch.zeros_like(g_neg)))
    term_pos = -((present * log_pos).sum(1) / present.sum(1).clamp(min=1)).mean()
    term_neg = -((absent * log_neg).sum(1) / absent.sum(1).clamp(min=1)).mean()
    term_bg = -torch.log(g_bg).mean()
    total = term_pos + term_neg + term_bg
    if return_terms:
        return ExpansionTerms(total, term_pos, term_neg, term_bg)
    return total


def constrain_loss(probs: torch.Tensor, crf: torch.Tensor | np.ndarray, floor: float = 1e-4) -> torch.Tensor:
    """SEC eq. (5): ``(1/n) sum_u sum_c Q_{u,c} log(Q_{u,c} / f_{u,c})``, averaged over the batch.

    Q (the dense CRF's output on the downscaled image, see :func:`wsl.segmentation.crf.dense_crf` with
    scale 12) is a fixed target: it is detached (no gradient reaches it), clamped at ``floor`` and
    renormalised over the classes, as in the authors' code.

    Args:
        probs: ``(B, C, H, W)`` floored probabilities f.
        crf: ``(B, C, H, W)`` CRF marginals Q (tensor or array).

    Returns:
        scalar, >= 0 (0 when Q equals f and f >= floor).
    """
    q = torch.as_tensor(crf).detach().to(device=probs.device, dtype=probs.dtype)
    if q.shape != probs.shape:
        raise ValueError(f"crf {tuple(q.shape)} does not match probs {tuple(probs.shape)}")
    q = q.clamp(min=floor)
    q = q / q.sum(dim=1, keepdim=True)
    return (q * (torch.log(q) - torch.log(probs))).sum(dim=1).mean()
