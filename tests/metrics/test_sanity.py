"""Cascading model-parameter randomisation: a gradient map changes, an edge detector does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl.metrics.sanity import cascading_randomization, flag, spearman_rows, ssim_rows


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 4)

    def features(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def gradcam_fn(model, images, classes):
    """A Grad-CAM-like map (Selvaraju et al. 2017) on conv2, written here with autograd."""
    maps = []
    for k in range(classes.shape[1]):
        feats = model.features(images).detach().requires_grad_(True)
        logits = model.fc(feats.mean(dim=(2, 3)))
        score = logits.gather(1, classes[:, k : k + 1]).sum()
        (grad,) = torch.autograd.grad(score, feats)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        maps.append(torch.relu((weights * feats).sum(1)))
    return torch.stack(maps, 1)


def edge_fn(model, images, classes):
    """Ignores the model: Sobel magnitude of the grey image, one copy per class."""
    grey = images.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    gx = torch.nn.functional.conv2d(grey, kx, padding=1)
    gy = torch.nn.functional.conv2d(grey, kx.transpose(2, 3), padding=1)
    return torch.hypot(gx, gy).expand(-1, classes.shape[1], -1, -1)


def setup():
    torch.manual_seed(0)
    model = TinyNet().eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 12, 12, generator=g)
    images[:, :, 3:8, 3:8] += 1.0  # some structure for the edge detector
    classes = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]])
    return model, images, classes


def test_gradient_map_decorrelates_edge_detector_is_flagged():
    model, images, classes = setup()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = ["fc", "conv2", "conv1"]
    cam = cascading_randomization(model, blocks, gradcam_fn, images, classes, seed=0)
    edges = cascading_randomization(model, blocks, edge_fn, images, classes, seed=0)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # never mutated
    assert cam["spearman"].shape == (3,) and cam["spearman_per_map"].shape == (3, 8)
    np.testing.assert_allclose(edges["spearman"], 1.0)
    np.testing.assert_allclose(edges["ssim"], 1.0)
    assert cam["spearman"][-1] < 0.5 and cam["spearman"].min() < 0.5
    assert flag(edges) and flag(edges, after=1)
    assert not flag(cam)
    again = cascading_randomization(model, blocks, gradcam_fn, images, classes, seed=0)
    np.testing.assert_array_equal(again["spearman"], cam["spearman"])


def test_spearman_and_ssim_rows():
    rng = np.random.default_rng(0)
    a = rng.random((3, 50))
    np.testing.assert_allclose(spearman_rows(a, a**3), 1.0)
    np.testing.assert_allclose(spearman_rows(a, -a), -1.0)
    const = np.ones((1, 50))
    assert spearman_rows(const, const)[0] == 1.0 and spearman_rows(const, a[:1])[0] == 0.0
    maps = rng.random((2, 9, 9))
    np.testing.assert_allclose(ssim_rows(maps, maps * 4 + 1), 1.0)
    assert (ssim_rows(maps, rng.random((2, 9, 9))) < 0.5).all()
    assert ssim_rows(rng.random((1, 3, 5)), rng.random((1, 3, 5))).shape == (1,)


def test_bad_input():
    model, images, classes = setup()
    with pytest.raises(AttributeError):
        cascading_randomization(model, ["head"], gradcam_fn, images, classes)
    with pytest.raises(ValueError, match="at least one"):
        cascading_randomization(model, [], gradcam_fn, images, classes)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        cascading_randomization(model, ["fc"], lambda m, x, c: x[:, 0], images, classes)
    with pytest.raises(ValueError, match="after"):
        flag({"spearman": np.array([0.2, 0.9])}, after=3)
