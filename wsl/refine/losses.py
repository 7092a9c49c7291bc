"""The affinity loss on inter-pixel labels (Ahn et al., CVPR 2019, Eq. 3; Ahn & Kwak, CVPR 2018, Eq. 3-4).

Both papers train pair affinities ``a`` with cross-entropy, balanced by the counts of three pair sets:
background-positive and foreground-positive pairs (``-log a``) and negative pairs (``-log (1 - a)``)::

    L = L_bg+ / 4 + L_fg+ / 4 + L_- / 2,    L_set = sum_{pairs in set} loss / (|set| + 1e-5)

IRN writes it ``((L_bg+ + L_fg+) / 2 + L_-) / 2`` (``step/train_irn.py``), PSA ``bg/4 + fg/4 + neg/2``
(``train_aff.py``): the same weights. With affinities from a boundary map (IRN) it is the class-boundary
loss; with affinities from an embedding (PSA) the affinity loss. ``1e-5`` inside the logs as both codes.

The set sizes are those of the whole batch: a process holding part of a global batch (DDP) passes the sizes
summed over every process (``set_sizes`` of each part, all-reduced), so that the parts' terms add up to
the single-process loss.
"""

from __future__ import annotations

import torch

__all__ = ["LOSS_TERMS", "affinity_loss", "set_sizes"]

LOSS_TERMS = ("bg_pos", "fg_pos", "neg", "total")
EPS = 1e-5


def set_sizes(labels: torch.Tensor) -> list[float]:
    """How many background-positive, foreground-positive and negative pairs ``labels`` (as in
    :func:`affinity_loss`) holds."""
    return [float(n) for n in labels.sum(dim=(0, 2, 3, 4), dtype=torch.float64)]


def affinity_loss(
    affinity: torch.Tensor, labels: torch.Tensor, sizes: list[float] | None = None
) -> dict[str, torch.Tensor]:
    """The balanced affinity cross-entropy over a batch.

    Args:
        affinity: ``(B, D, H, W)`` pair affinities in [0, 1].
        labels: ``(B, 3, D, H, W)`` 0/1 masks of the background-positive, foreground-positive and negative
            pairs (:meth:`wsl.refine.pairs.PairLabels.stack`); other pairs carry no loss.
        sizes: the three set sizes of the whole batch when ``labels`` is one process's part of it
            (:func:`set_sizes` summed over the processes); None: those of ``labels``.

    Returns:
        ``bg_pos``, ``fg_pos``, ``neg`` and ``total`` (scalars; ``total`` is what to minimise). With
        ``sizes``, each is this part's share: the shares of all parts add up to the whole batch's loss.
    """
    if labels.shape[:1] + labels.shape[2:] != affinity.shape or labels.shape[1] != 3:
        raise ValueError(f"labels {tuple(labels.shape)} do not fit affinities {tuple(affinity.shape)}")
    labels = labels.to(affinity.dtype)
    n = (
        labels.sum(dim=(0, 2, 3, 4))
        if sizes is None
        else torch.tensor(sizes, dtype=affinity.dtype, device=affinity.device)
    )
    pos = -torch.log(affinity + EPS)
    neg = -torch.log(1 + EPS - affinity)
    terms = {
        "bg_pos": (labels[:, 0] * pos).sum() / (n[0] + EPS),
        "fg_pos": (labels[:, 1] * pos).sum() / (n[1] + EPS),
        "neg": (labels[:, 2] * neg).sum() / (n[2] + EPS),
    }
    terms["total"] = (terms["bg_pos"] + terms["fg_pos"]) / 4 + terms["neg"] / 2
    return terms
