"""The affinity loss on inter-pixel labels (Ahn et al., CVPR 2019, Eq. 3; Ahn & Kwak, CVPR 2018, Eq. 3-4).

Both papers train pair affinities ``a`` with cross-entropy, balanced by the counts of three pair sets:
background-positive and foreground-positive pairs (``-log a``) and negative pairs (``-log (1 - a)``)::

    L = L_bg+ / 4 + L_fg+ / 4 + L_- / 2,    L_set = sum_{pairs in set} loss / (|set| + 1e-5)

IRN writes it ``((L_bg+ + L_fg+) / 2 + L_-) / 2`` (``step/train_irn.py``), PSA ``bg/4 + fg/4 + neg/2``
(``train_aff.py``): the same weights. With affinities from a boundary map (IRN) it is the class-boundary
loss; with affinities from an embedding (PSA) the affinity loss. ``1e-5`` inside the logs as both codes.
"""

from __future__ import annotations

import torch

__all__ = ["LOSS_TERMS", "affinity_loss"]

LOSS_TERMS = ("bg_pos", "fg_pos", "neg", "total")
EPS = 1e-5


def affinity_loss(affinity: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The balanced affinity cross-entropy over a batch.

    Args:
        affinity: ``(B, D, H, W)`` pair affinities in [0, 1].
        labels: ``(B, 3, D, H, W)`` 0/1 masks of the background-positive, foreground-positive and negative
            pairs (:meth:`wsl.refine.pairs.PairLabels.stack`); other pairs carry no loss.

    Returns:
        ``bg_pos``, ``fg_pos``, ``neg`` and ``total`` (scalars; ``total`` is what to minimise).
    """
    if labels.shape[:1] + labels.shape[2:] != affinity.shape or labels.shape[1] != 3:
        raise ValueError(f"labels {tuple(labels.shape)} do not fit affinities {tuple(affinity.shape)}")
    labels = labels.to(affinity.dtype)
    pos = -torch.log(affinity + EPS)
    neg = -torch.log(1 + EPS - affinity)
    terms = {
        "bg_pos": (labels[:, 0] * pos).sum() / (labels[:, 0].sum() + EPS),
        "fg_pos": (labels[:, 1] * pos).sum() / (labels[:, 1].sum() + EPS),
        "neg": (labels[:, 2] * neg).sum() / (labels[:, 2].sum() + EPS),
    }
    terms["total"] = (terms["bg_pos"] + terms["fg_pos"]) / 4 + terms["neg"] / 2
    return terms
