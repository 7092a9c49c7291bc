"""Seeds from class maps on hand-made arrays: thresholds, background rules, overlap rules, CAM to mask."""

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch import nn

from wsl.segmentation.seeds import (
    cam_to_mask,
    gradient_saliency,
    irn_confident_seeds,
    max_normalise,
    seeds_from_maps,
)

U = 255


def test_fg_threshold_is_strictly_above_fraction_of_max():
    raw = np.array([[[5.0, 1.0, 1.01, 0.0]]])  # max 5: 20 % is exactly 1.0
    seeds = seeds_from_maps(raw, np.array([3]), fg_thresh=0.2, bg_thresh=0.05)
    np.testing.assert_array_equal(seeds, [[3, U, 3, 0]])
    # already max-normalised input gives the same seeds
    np.testing.assert_array_equal(seeds_from_maps(raw / 5.0, np.array([3])), seeds)
    assert seeds.dtype == np.uint8


def test_background_where_every_map_is_strictly_below():
    maps = np.array(
        [
            [[1.0, 0.05, 0.04, 0.0]],
            [[0.0, 0.0, 0.06, 1.0]],
        ]
    )
    seeds = seeds_from_maps(maps, np.array([1, 2]), fg_thresh=0.5, bg_thresh=0.05)
    # col 1: class-1 map equals bg_thresh (not below) -> unsure; col 2: class-2 map 0.06 -> unsure
    np.testing.assert_array_equal(seeds, [[1, U, U, 2]])


def test_no_present_class_is_all_background():
    seeds = seeds_from_maps(np.zeros((0, 2, 3)), np.zeros(0, dtype=int))
    np.testing.assert_array_equal(seeds, np.zeros((2, 3)))


def test_saliency_background_is_lowest_fraction():
    saliency = np.arange(100, dtype=float).reshape(10, 10)[::-1]  # lowest values at the bottom right
    maps = np.zeros((1, 10, 10))
    maps[0, 0, 0] = 1.0
    seeds = seeds_from_maps(maps, np.array([4]), saliency=saliency, bg_fraction=0.1)
    assert (seeds == 0).sum() == 10
    assert (seeds[-1] == 0).all()  # the 10 least salient pixels are the last row
    assert seeds[0, 0] == 4
    assert (seeds == U).sum() == 89


def overlapping_maps():
    # class 1: large cue (cols 0-3), weak at col 3; class 2: small cue (cols 3-4), strong at col 3
    m1 = np.array([[1.0, 1.0, 1.0, 0.3, 0.0]])
    m2 = np.array([[0.0, 0.0, 0.0, 0.9, 1.0]])
    return np.stack([m1, m2]), np.array([1, 2])


def test_overlap_smaller_cue_wins():
    maps, classes = overlapping_maps()
    maps[1, 0, 3] = 0.25  # class 2 weaker than class 1 at the overlap, yet its cue is smaller
    seeds = seeds_from_maps(maps, classes, fg_thresh=0.2, overlap="smaller")
    np.testing.assert_array_equal(seeds, [[1, 1, 1, 2, 2]])


def test_overlap_argmax_takes_the_stronger_map():
    maps, classes = overlapping_maps()
    maps[1, 0, 3] = 0.25
    seeds = seeds_from_maps(maps, classes, fg_thresh=0.2, overlap="argmax")
    np.testing.assert_array_equal(seeds, [[1, 1, 1, 1, 2]])


def test_background_cue_overlap_rules():
    maps = np.array([[[1.0, 1.0, 1.0, 0.0]]])
    saliency = np.array([[5.0, 5.0, 0.0, 0.0]])  # the two least salient pixels: cols 2 and 3
    kw = dict(saliency=saliency, bg_fraction=0.5)
    # fg cue 3 px, bg cue 2 px: the smaller background cue wins at col 2
    np.testing.assert_array_equal(seeds_from_maps(maps, np.array([7]), **kw), [[7, 7, 0, 0]])
    # argmax: a background cue meeting a foreground cue is unsure
    np.testing.assert_array_equal(
        seeds_from_maps(maps, np.array([7]), overlap="argmax", **kw), [[7, 7, U, 0]]
    )


def test_cam_to_mask_background_wins_ties():
    maps = np.array([[[0.15, 0.16, 0.9]], [[0.1, 0.16, 0.95]]], dtype=np.float32)
    mask = cam_to_mask(maps, np.array([5, 9]), threshold=0.15)
    np.testing.assert_array_equal(mask, [[0, 5, 9]])  # tie with the plane -> bg; tie among classes -> first
    np.testing.assert_array_equal(cam_to_mask(np.zeros((0, 1, 2), np.float32), np.zeros(0, int)), [[0, 0]])


def test_max_normalise_does_not_mutate_and_keeps_zero_maps():
    maps = np.array([[[2.0, -1.0]], [[0.0, 0.0]]])
    before = maps.copy()
    out = max_normalise(maps)
    np.testing.assert_array_equal(out, [[[1.0, 0.0]], [[0.0, 0.0]]])
    np.testing.assert_array_equal(maps, before)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        seeds_from_maps(np.zeros((2, 2, 2)), np.array([1]))
    with pytest.raises(ValueError):
        seeds_from_maps(np.zeros((1, 2, 2)), np.array([0]))
    with pytest.raises(ValueError):
        seeds_from_maps(np.full((1, 2, 2), np.nan), np.array([1]))
    with pytest.raises(ValueError):
        seeds_from_maps(np.zeros((1, 2, 2)), np.array([1]), overlap="largest")


def test_irn_confident_seeds_three_regions():
    # stripes of three colours; maps 0.0 / 0.1 / 1.0 on them: bg, unsure (between 0.05 and 0.30), class
    h, w = 12, 30
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :10] = (20, 200, 20)
    image[:, 10:20] = (200, 20, 20)
    image[:, 20:] = (20, 20, 200)
    maps = np.zeros((1, h, w), np.float32)
    maps[0, :, 10:20] = 0.1
    maps[0, :, 20:] = 1.0
    seeds = irn_confident_seeds(image, maps, np.array([6]))
    expected = np.zeros((h, w), np.uint8)
    expected[:, 10:20] = U
    expected[:, 20:] = 6
    np.testing.assert_array_equal(seeds, expected)


class _Scores(nn.Module):
    """Scores s_k = sum over positions of A[:, 0] * W_k, so d(sum_k s_k)/dA[:, 0] = sum_k W_k."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.layer = nn.Conv2d(3, 2, 1)
        self.register_buffer("w", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.layer(x)
        return (a[:, :1] * self.w[None]).flatten(2).sum(-1)


def test_gradient_saliency_matches_median_of_abs_gradient():
    torch.manual_seed(0)
    weights = torch.randn(4, 6, 7, dtype=torch.float64)
    model = _Scores(weights).double()
    sal = gradient_saliency(model, model.layer, torch.randn(2, 3, 6, 7, dtype=torch.float64))
    grad = weights.sum(0).abs().numpy()  # channel 1 gets no gradient, so the max over channels is this
    expected = scipy.ndimage.median_filter(grad, size=3, mode="nearest")
    assert sal.shape == (2, 6, 7)
    np.testing.assert_allclose(sal[0].numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(sal[1].numpy(), expected, rtol=1e-12)
    assert all(p.grad is None for p in model.parameters())
    assert not model.layer._forward_hooks


class _SumPositions(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).sum(-1)


def test_gradient_saliency_is_taken_before_an_inplace_relu():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    head = nn.Conv2d(4, 3, 1).double()
    model = nn.Sequential(conv, nn.ReLU(inplace=True), head, _SumPositions())
    x = torch.randn(1, 3, 8, 9, dtype=torch.float64)
    sal = gradient_saliency(model, conv, x)
    a = conv(x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(head(torch.relu(a)).sum(), a)
    assert (grad == 0).any()  # the ReLU masks some positions: pre- and post-activation gradients differ
    expected = scipy.ndimage.median_filter(grad.abs().amax(1)[0].numpy(), size=3, mode="nearest")
    np.testing.assert_allclose(sal[0].numpy(), expected, rtol=1e-12)
