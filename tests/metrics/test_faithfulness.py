"""Deletion / insertion and Average Drop on a model whose score depends on one image region."""

from __future__ import annotations

import pytest
import torch

from wsl.metrics.faithfulness import average_drop_increase, blur, deletion_insertion

S = 16


def close(a, b):
    assert torch.allclose(a, b, atol=1e-6), (a, b)


class RegionModel(torch.nn.Module):
    """Class 1's logit is proportional to the mean of the top-left 6 x 6 corner; class 0's is 0."""

    def forward(self, x):
        evidence = x[:, :, :6, :6].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(evidence), 8.0 * evidence], dim=1)


def score_fn(x):
    return RegionModel()(x).softmax(1)


def pairs(n=3):
    g = torch.Generator().manual_seed(0)
    images = 0.5 + 0.5 * torch.rand(n, 3, S, S, generator=g)
    good = torch.zeros(n, S, S)
    good[:, :6, :6] = 1.0  # points at the evidence
    good += 0.01 * torch.rand(n, S, S, generator=g)
    bad = torch.zeros(n, S, S)
    bad[:, 10:, 10:] = 1.0  # points elsewhere
    bad += 0.01 * torch.rand(n, S, S, generator=g)
    return images, torch.ones(n, dtype=torch.long), good, bad


def test_map_on_the_evidence_scores_better():
    images, classes, good, bad = pairs()
    del_good = deletion_insertion(score_fn, images, classes, good, "deletion", n_steps=16)
    del_bad = deletion_insertion(score_fn, images, classes, bad, "deletion", n_steps=16)
    # this model reads brightness, which a blur keeps: insert onto zeros
    ins_good = deletion_insertion(score_fn, images, classes, good, "insertion", n_steps=16, baseline="zeros")
    ins_bad = deletion_insertion(score_fn, images, classes, bad, "insertion", n_steps=16, baseline="zeros")
    assert (del_good["auc"] < del_bad["auc"] - 0.1).all()
    assert (ins_good["auc"] > ins_bad["auc"] + 0.1).all()
    drop_good = average_drop_increase(score_fn, images, classes, good)
    drop_bad = average_drop_increase(score_fn, images, classes, bad)
    assert drop_good["average_drop"] < drop_bad["average_drop"] - 0.1
    assert drop_good["drop"].shape == (3,) and drop_good["increase"].dtype == torch.bool


def test_curve_ends_batching_and_maps_upsampled():
    images, classes, good, _ = pairs(2)
    out = deletion_insertion(score_fn, images, classes, good, "deletion", n_steps=8, batch_size=64)
    assert out["curves"].shape == (2, 9)
    close(out["curves"][:, 0], score_fn(images)[:, 1])  # untouched image
    close(out["curves"][:, -1], torch.full((2,), 0.5))  # all zeros -> logit 0
    small = torch.nn.functional.avg_pool2d(good[:, None], 2)[:, 0]  # (2, 8, 8) map, upsampled inside
    one = deletion_insertion(score_fn, images, classes, small, "deletion", n_steps=8, batch_size=1)
    many = deletion_insertion(score_fn, images, classes, small, "deletion", n_steps=8, batch_size=7)
    close(one["auc"], many["auc"])
    x = torch.linspace(0, 1, 9)
    close(out["auc"], torch.trapezoid(out["curves"], x, dim=1))
    assert out["mean"] == pytest.approx(float(out["auc"].mean()))


def test_insertion_starts_from_blur_and_custom_baseline():
    images, classes, good, _ = pairs(1)
    out = deletion_insertion(score_fn, images, classes, good, "insertion", n_steps=4)
    close(out["curves"][:, 0], score_fn(blur(images))[:, 1])
    grey = torch.full_like(images, 0.25)
    out = deletion_insertion(score_fn, images, classes, good, "insertion", n_steps=4, baseline=grey)
    close(out["curves"][:, 0], score_fn(grey)[:, 1])
    assert blur(images).shape == images.shape


def test_bad_input_and_no_mutation():
    images, classes, good, _ = pairs(2)
    before_images, before_maps = images.clone(), good.clone()
    deletion_insertion(score_fn, images, classes, good)
    average_drop_increase(score_fn, images, classes, good)
    assert torch.equal(images, before_images) and torch.equal(good, before_maps)
    nan_maps = good.clone()
    nan_maps[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion(score_fn, images, classes, nan_maps)
    with pytest.raises(ValueError, match="NaN"):
        average_drop_increase(score_fn, images, classes, nan_maps)
    with pytest.raises(ValueError, match="one class"):
        deletion_insertion(score_fn, images, classes[:1], good)
    with pytest.raises(ValueError, match="mode"):
        deletion_insertion(score_fn, images, classes, good, mode="both")
    with pytest.raises(ValueError, match="baseline"):
        deletion_insertion(score_fn, images, classes, good, baseline="mean")
    with pytest.raises(ValueError, match="probability 0"):
        average_drop_increase(lambda x: torch.zeros(x.shape[0], 2), images, classes, good)
