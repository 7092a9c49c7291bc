"""SEC's losses on hand-computed 2x2 cases, GWRP's limits, and float64 gradchecks."""

import math

import pytest
import torch

from wsl.segmentation.losses import (
    constrain_loss,
    decay_for_grid,
    expansion_loss,
    gwrp,
    prob_floor,
    seeding_loss,
    seeds_to_onehot,
)


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def test_prob_floor_formula():
    logits = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    p = prob_floor(logits)
    expected = (torch.softmax(logits, 1) + 1e-4) / (1 + 4e-4)
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(p.sum(1), torch.ones(2, 3, 3, dtype=torch.float64))
    assert torch.log(prob_floor(t64([[[[-1e4]], [[1e4]]]]))).isfinite().all()


def test_gwrp_limits_and_hand_case():
    probs = t64([[[[0.1, 0.4], [0.3, 0.2]]]])  # (1, 1, 2, 2)
    assert gwrp(probs, 0.0).item() == pytest.approx(0.4, abs=1e-15)
    assert gwrp(probs, 1.0).item() == pytest.approx(0.25, abs=1e-15)
    # d = 0.5: sorted 0.4, 0.3, 0.2, 0.1 with weights 1, 1/2, 1/4, 1/8 over Z = 15/8
    expected = (0.4 + 0.15 + 0.05 + 0.0125) / 1.875
    assert gwrp(probs, 0.5).item() == pytest.approx(expected, abs=1e-15)
    many = torch.rand(3, 5, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(gwrp(many, 0.0), many.flatten(2).amax(2))
    torch.testing.assert_close(gwrp(many, 1.0), many.flatten(2).mean(2))
    with pytest.raises(ValueError):
        gwrp(many, 1.5)


def test_decay_for_grid():
    assert decay_for_grid(0.996, 41 * 41) == pytest.approx(0.996)
    assert decay_for_grid(0.996, 20 * 20) == pytest.approx(0.996 ** (1681 / 400))
    assert decay_for_grid(0.0, 400) == 0.0
    assert decay_for_grid(1.0, 400) == 1.0
    # the same effective weight on the whole grid: d'^n == d^1681
    assert decay_for_grid(0.999, 400) ** 400 == pytest.approx(0.999**1681)


def two_by_two():
    """f: (1, 3, 2, 2): background, class 1, class 2; each location sums to one."""
    bg = [[0.7, 0.1], [0.2, 0.5]]
    c1 = [[0.2, 0.8], [0.6, 0.1]]
    c2 = [[0.1, 0.1], [0.2, 0.4]]
    return t64([[bg, c1, c2]])


def test_seeding_loss_hand_case_labels_and_onehot():
    f = two_by_two()
    seeds = torch.tensor([[[0, 1], [255, 2]]])
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.4)) / 3
    assert seeding_loss(f.log(), seeds).item() == pytest.approx(expected, abs=1e-14)
    onehot = seeds_to_onehot(seeds, 3)
    assert onehot.shape == (1, 3, 2, 2) and onehot[0, :, 1, 0].sum() == 0
    assert seeding_loss(f.log(), onehot).item() == pytest.approx(expected, abs=1e-14)
    # an image without any seed contributes 0 to the batch mean
    batch = torch.cat([f, f]).log()
    both = torch.cat([seeds, torch.full_like(seeds, 255)])
    assert seeding_loss(batch, both).item() == pytest.approx(expected / 2, abs=1e-14)
    with pytest.raises(ValueError):
        seeding_loss(f.log(), torch.tensor([[[0, 3], [255, 2]]]))


def test_expansion_loss_terms_hand_case():
    f = two_by_two()
    labels = torch.tensor([[1, 0]])  # class 1 present, class 2 absent
    terms = expansion_loss(f, labels, d_pos=0.5, d_neg=0.0, d_bg=1.0, return_terms=True)
    g1 = (0.8 + 0.6 / 2 + 0.2 / 4 + 0.1 / 8) / 1.875  # class 1 sorted 0.8, 0.6, 0.2, 0.1
    assert terms.present.item() == pytest.approx(-math.log(g1), abs=1e-14)
    assert terms.absent.item() == pytest.approx(-math.log(1 - 0.4), abs=1e-14)  # max of class 2
    assert terms.background.item() == pytest.approx(-math.log(1.5 / 4), abs=1e-14)  # mean of bg
    total = expansion_loss(f, labels, d_pos=0.5, d_neg=0.0, d_bg=1.0)
    assert total.item() == pytest.approx(sum(t.item() for t in terms[1:]), abs=1e-14)


def test_expansion_loss_normalises_per_image_and_handles_empty_sets():
    f = two_by_two()
    g_max = [0.8, 0.4]
    both = expansion_loss(f, torch.tensor([[1, 1]]), d_pos=0.0, return_terms=True)
    assert both.present.item() == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2, abs=1e-14)
    assert both.absent.item() == 0.0  # no absent class
    none = expansion_loss(f, torch.tensor([[0, 0]]), return_terms=True)
    assert none.present.item() == 0.0
    assert none.absent.item() == pytest.approx(-(math.log(1 - g_max[0]) + math.log(1 - g_max[1])) / 2)
    batch = expansion_loss(torch.cat([f, f]), torch.tensor([[1, 1], [0, 0]]), d_pos=0.0, return_terms=True)
    assert batch.present.item() == pytest.approx(both.present.item() / 2, abs=1e-14)
    with pytest.raises(ValueError, match="C - 1"):
        expansion_loss(f, torch.tensor([[0, 1, 0]]))


def test_constrain_loss_hand_case_and_floor():
    f = t64([[[[0.25]], [[0.75]]]])  # (1, 2, 1, 1)
    q = t64([[[[0.5]], [[0.5]]]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert constrain_loss(f, q).item() == pytest.approx(expected, abs=1e-15)
    hard = t64([[[[1.0]], [[0.0]]]])  # clamped at 1e-4 and renormalised
    q1, q2 = 1 / (1 + 1e-4), 1e-4 / (1 + 1e-4)
    expected = q1 * math.log(q1 / 0.25) + q2 * math.log(q2 / 0.75)
    assert constrain_loss(f, hard).item() == pytest.approx(expected, abs=1e-14)
    assert constrain_loss(f, hard.numpy()).item() == pytest.approx(expected, abs=1e-14)


def test_constrain_loss_passes_no_gradient_to_q():
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    f = prob_floor(logits)
    q = torch.softmax(torch.randn(2, 3, 4, 5, dtype=torch.float64), 1).requires_grad_(True)
    loss = constrain_loss(f, q)
    assert loss.item() > 0
    loss.backward()
    assert q.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert f.min() > 1e-4  # so that clamping Q = f at the floor changes nothing
    same = constrain_loss(f.detach(), f.detach().clone())
    assert abs(same.item()) < 1e-12


def test_gradcheck_float64():
    torch.manual_seed(0)
    probs = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    for d in (0.0, 0.7, 1.0):
        assert torch.autograd.gradcheck(lambda p, d=d: gwrp(p, d), (probs,))
    logits = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    seeds = torch.tensor([[[0, 1, 255, 2]] * 3, [[255] * 4, [1, 1, 0, 255], [2, 255, 255, 0]]])
    assert torch.autograd.gradcheck(lambda x: seeding_loss(torch.log(prob_floor(x)), seeds), (logits,))
    labels = torch.tensor([[1, 0], [1, 1]])
    assert torch.autograd.gradcheck(lambda x: expansion_loss(prob_floor(x), labels), (logits,))
    q = torch.softmax(torch.randn(2, 3, 3, 4, dtype=torch.float64), 1)
    assert torch.autograd.gradcheck(lambda x: constrain_loss(prob_floor(x), q), (logits,))
