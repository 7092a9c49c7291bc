"""IRN's class-boundary loss (= PSA's affinity loss weights) on a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch

from wsl.refine.losses import affinity_loss, set_sizes
from wsl.refine.pairs import boundary_affinity


def test_loss_by_hand():
    aff = torch.tensor([0.9, 0.5, 0.2, 0.7], dtype=torch.float64).view(1, 1, 1, 4)
    labels = torch.zeros(1, 3, 1, 1, 4)
    labels[0, 0, 0, 0, 0] = 1  # background-positive pair, affinity 0.9
    labels[0, 1, 0, 0, 1] = 1  # foreground-positive pair, affinity 0.5
    labels[0, 2, 0, 0, 2:] = 1  # negative pairs, affinities 0.2 and 0.7
    got = affinity_loss(aff, labels)
    eps = 1e-5
    bg = -math.log(0.9 + eps) / (1 + eps)
    fg = -math.log(0.5 + eps) / (1 + eps)
    neg = (-math.log(1 + eps - 0.2) - math.log(1 + eps - 0.7)) / (2 + eps)
    assert got["bg_pos"].item() == pytest.approx(bg, rel=1e-12)
    assert got["fg_pos"].item() == pytest.approx(fg, rel=1e-12)
    assert got["neg"].item() == pytest.approx(neg, rel=1e-12)
    # IRN (step/train_irn.py): ((bg + fg) / 2 + neg) / 2; PSA: bg/4 + fg/4 + neg/2
    assert got["total"].item() == pytest.approx(((bg + fg) / 2 + neg) / 2, rel=1e-12)


def test_boundary_on_the_true_edge_gives_no_loss_and_gradients_where_wrong():
    # two regions split by a column: a boundary of 1 exactly there makes every pair right
    labels = torch.zeros(1, 3, 2, 1, 3)  # radius 2 offsets (0,1),(1,-1),(1,0),(1,1) on a 1x3 grid
    # pairs (0,0)-(0,1): same class, (0,1)-(0,2): different classes; the (0,1) cell is the boundary
    edge = torch.tensor([[[0.0, 1.0, 0.0]]])
    aff = boundary_affinity(edge, 2)[:, :1]  # only offset (0, 1) exists on one row
    assert aff[0, 0, 0].tolist() == [0.0, 0.0, 0.0]  # any path through the boundary cell is cut
    edge = torch.tensor([[[0.0, 0.0, 1.0]]], requires_grad=True)
    aff = boundary_affinity(edge, 2)[:, :1]
    labels = torch.zeros(1, 3, 1, 1, 3)
    labels[0, 1, 0, 0, 0] = 1  # (0,0)-(0,1) same class: affinity 1, no loss
    labels[0, 2, 0, 0, 1] = 1  # (0,1)-(0,2) different: affinity 0, no loss
    loss = affinity_loss(aff, labels)
    assert loss["total"].item() == pytest.approx(0.0, abs=1e-4)
    wrong = torch.tensor([[[0.0, 0.0, 0.2]]], requires_grad=True)
    affinity_loss(boundary_affinity(wrong, 2)[:, :1], labels)["total"].backward()
    assert wrong.grad[0, 0, 2] < 0  # raising the boundary between the classes lowers the loss


def test_shares_of_a_split_batch_add_up_to_the_whole_batch_loss_and_gradient():
    """DDP: each process's share, normalised by the whole batch's set sizes, sums to the single-process
    loss and gradient (the parts' own sizes would give another, unequal weighting)."""
    g = torch.Generator().manual_seed(0)
    aff = torch.rand(4, 5, 3, 3, generator=g, dtype=torch.float64).requires_grad_()
    labels = (torch.rand(4, 3, 5, 3, 3, generator=g) > 0.6).float()
    labels[:2, 1] = 0  # the first part has no foreground-positive pair: its own sizes would weigh it wrongly
    whole = affinity_loss(aff, labels)
    (grad_whole,) = torch.autograd.grad(whole["total"], aff)
    sizes = [a + b for a, b in zip(set_sizes(labels[:2]), set_sizes(labels[2:]))]
    assert sizes == set_sizes(labels)
    shares = [affinity_loss(aff[s], labels[s], sizes) for s in (slice(0, 2), slice(2, 4))]
    for k in whole:
        assert (shares[0][k] + shares[1][k]).item() == pytest.approx(whole[k].item(), rel=1e-12)
    (grad_parts,) = torch.autograd.grad(shares[0]["total"] + shares[1]["total"], aff)
    torch.testing.assert_close(grad_parts, grad_whole, rtol=1e-12, atol=1e-15)
    own = [affinity_loss(aff[s], labels[s]) for s in (slice(0, 2), slice(2, 4))]
    assert (own[0]["total"] + own[1]["total"]).item() / 2 != pytest.approx(whole["total"].item(), rel=1e-3)
