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


class BNNet(torch.nn.Module):
    """conv-BN-ReLU twice, global average pooling, a linear head; trained-looking BN values (not the
    fresh 1 / 0 / 0 / 1) so that a reset is visible."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.BatchNorm2d(6))
        self.fc = torch.nn.Linear(6, 3)
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for bn in (self.bn1, self.body[1]):
                bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(bn.num_features, generator=g))
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.num_batches_tracked.fill_(11)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.body(x))
        return self.fc(x.mean((2, 3)))


def changes_per_step(mode: str, blocks=None):
    """The state-dict keys that differ from the trained model after each cascade step."""
    from wsl.metrics.sanity import layer_blocks

    torch.manual_seed(0)
    model = BNNet().eval()
    blocks = layer_blocks(model) if blocks is None else blocks
    states = []

    def snapshot(m, images, classes):
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return torch.rand(images.shape[0], classes.shape[1], 4, 4, generator=torch.Generator().manual_seed(0))

    images = torch.rand(2, 3, 8, 8)
    res = cascading_randomization(
        model, blocks, snapshot, images, torch.zeros(2, 1, dtype=torch.long), mode=mode
    )
    trained = states[0]
    steps = [sorted(k for k in trained if not torch.equal(trained[k], s[k])) for s in states[1:]]
    return blocks, steps, states, res


def test_layer_blocks_are_whole_layers_top_first():
    from wsl.metrics.sanity import layer_blocks

    assert layer_blocks(BNNet()) == ["fc", "body.0+body.1", "conv1+bn1"]
    assert layer_blocks(TinyNet()) == ["fc", "conv2", "conv1"]


def test_layers_mode_randomises_weights_biases_and_norm_parameters_and_buffers():
    blocks, steps, states, res = changes_per_step("layers")
    bn2 = [f"body.1.{k}" for k in ("bias", "num_batches_tracked", "running_mean", "running_var", "weight")]
    bn1 = [f"bn1.{k}" for k in ("bias", "num_batches_tracked", "running_mean", "running_var", "weight")]
    assert steps[0] == ["fc.bias", "fc.weight"]
    assert steps[1] == sorted(["fc.bias", "fc.weight", "body.0.bias", "body.0.weight", *bn2])
    assert steps[2] == sorted(steps[1] + ["conv1.bias", "conv1.weight", *bn1])
    # a re-initialised BatchNorm is a freshly built one: gamma 1, beta 0, running mean 0, variance 1
    last = states[-1]
    assert torch.equal(last["bn1.weight"], torch.ones(4)) and torch.equal(
        last["bn1.running_var"], torch.ones(4)
    )
    assert torch.equal(last["bn1.bias"], torch.zeros(4)) and torch.equal(
        last["bn1.running_mean"], torch.zeros(4)
    )
    assert res["mode"] == "layers" and res["blocks"] == blocks


def test_conv_linear_mode_leaves_normalisation_trained():
    _, steps, _, res = changes_per_step("conv_linear")
    assert steps[0] == ["fc.bias", "fc.weight"]
    assert steps[1] == ["body.0.bias", "body.0.weight", "fc.bias", "fc.weight"]
    assert steps[2] == ["body.0.bias", "body.0.weight", "conv1.bias", "conv1.weight", "fc.bias", "fc.weight"]
    assert res["mode"] == "conv_linear"


def test_conv_linear_mode_equals_the_earlier_randomisation():
    """Blocks that are single Conv / Linear modules get exactly what randomize_module gave them before."""
    from wsl.metrics.sanity import randomize_module

    _, _, states, _ = changes_per_step("conv_linear", ["fc", "body.0"])
    torch.manual_seed(0)
    model = BNNet().eval()
    randomize_module(model.fc, 0)
    randomize_module(model.body[0], 1)
    for k, v in model.state_dict().items():
        assert torch.equal(states[-1][k], v), k


def test_mode_is_checked():
    model, images, classes = setup()
    with pytest.raises(ValueError, match="mode must be one of layers, conv_linear"):
        cascading_randomization(model, ["fc"], gradcam_fn, images, classes, mode="all")
    with pytest.raises(AttributeError):
        cascading_randomization(model, ["fc+nothing"], gradcam_fn, images, classes)
