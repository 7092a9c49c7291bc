"""Guided Backprop for every ReLU-like activation (wsl.cam.guided) against a direct implementation of the
rule: each activation swapped for an autograd Function whose backward is written out by hand
(``g * 1[g > 0] * 1[x > 0] * f'(x)`` with f' in closed form, as pytorch-grad-cam's GuidedBackpropSwish).
ReLU networks are checked against pytorch-grad-cam itself in test_cam_equivalence.py."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsl.cam import CAMExtractor
from wsl.cam.guided import guided_activations


def derivative(kind: str, x: torch.Tensor) -> torch.Tensor:
    """f'(x) in closed form."""
    if kind == "relu":
        return (x > 0).to(x.dtype)
    if kind == "relu6":
        return ((x > 0) & (x < 6)).to(x.dtype)
    if kind == "leaky_relu":
        return torch.where(x > 0, 1.0, 0.1).to(x.dtype)
    if kind == "silu":
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))
    if kind == "gelu":
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return cdf + x * pdf
    if kind == "hardswish":
        return torch.where(x < -3, 0.0, torch.where(x > 3, 1.0, (2 * x + 3) / 6)).to(x.dtype)
    raise ValueError(kind)


FORWARD = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "silu": F.silu,
    "gelu": F.gelu,
    "hardswish": F.hardswish,
}


class ReferenceGuided(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kind, springenberg):
        ctx.save_for_backward(x)
        ctx.kind, ctx.springenberg = kind, springenberg
        return FORWARD[kind](x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        keep = (g > 0) & (x > 0) if ctx.springenberg else g > 0
        return g * keep * derivative(ctx.kind, x), None, None


class Reference(nn.Module):
    def __init__(self, kind: str, springenberg: bool = True) -> None:
        super().__init__()
        self.kind, self.springenberg = kind, springenberg

    def forward(self, x):
        return ReferenceGuided.apply(x, self.kind, self.springenberg)


class Functional(nn.Module):
    """An activation written as a function call inside forward (no activation module); the lambdas look
    the function up at call time, as ``F.relu(x)`` in a forward method does."""

    def __init__(self, call) -> None:
        super().__init__()
        self.call = call

    def forward(self, x):
        return self.call(x)


class Net(nn.Module):
    def __init__(self, act1: nn.Module, act2: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = act1
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.act2 = act2
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.act2(self.conv2(self.act1(self.conv1(x)))).mean((2, 3)))


# (name, module factory, reference kind); in-place variants as torchvision's MobileNet / EfficientNet use
CASES = [
    ("ReLU6", lambda: nn.ReLU6(inplace=True), "relu6"),
    ("SiLU", lambda: nn.SiLU(inplace=True), "silu"),
    ("GELU", lambda: nn.GELU(), "gelu"),
    ("GELU-tanh", lambda: nn.GELU(approximate="tanh"), None),
    ("Hardswish", lambda: nn.Hardswish(inplace=True), "hardswish"),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.1), "leaky_relu"),
    ("F.relu", lambda: Functional(lambda x: F.relu(x)), "relu"),
    ("torch.relu", lambda: Functional(lambda x: torch.relu(x)), "relu"),
    ("Tensor.relu", lambda: Functional(lambda x: x.relu()), "relu"),
    ("F.silu", lambda: Functional(lambda x: F.silu(x)), "silu"),
    ("F.hardswish", lambda: Functional(lambda x: F.hardswish(x)), "hardswish"),
    ("F.relu6", lambda: Functional(lambda x: F.relu6(x)), "relu6"),
    ("F.gelu", lambda: Functional(lambda x: F.gelu(x)), "gelu"),
    ("F.leaky_relu", lambda: Functional(lambda x: F.leaky_relu(x, 0.1)), "leaky_relu"),
]
CLASSES = torch.tensor([[0, 3], [4, 1]])


def make(factory) -> Net:
    torch.manual_seed(0)
    return Net(factory(), factory()).eval()


def images() -> torch.Tensor:
    return torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def input_gradients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, K, 3, H, W): d score / d x of each (image, class), by plain autograd on ``model``."""
    x = x.clone().requires_grad_(True)
    scores = model(x).gather(1, CLASSES)
    return torch.stack(
        [torch.autograd.grad(scores[:, k].sum(), x, retain_graph=True)[0] for k in range(CLASSES.shape[1])], 1
    )


def reference(model: Net, kind: str, springenberg: bool = True) -> torch.Tensor:
    ref = copy.deepcopy(model)
    ref.act1, ref.act2 = Reference(kind, springenberg), Reference(kind, springenberg)
    return input_gradients(ref, images())


@pytest.mark.parametrize("name,factory,kind", CASES, ids=[c[0] for c in CASES])
def test_guided_backprop_follows_the_rule_and_is_not_the_plain_gradient(name, factory, kind):
    model = make(factory)
    with CAMExtractor(model, "guided_backprop") as ext:
        got = ext(images(), CLASSES)  # (B, K, H, W): max |guided gradient| over RGB
    plain = input_gradients(model, images()).abs().amax(2)
    assert got.shape == plain.shape == (2, 2, 12, 12)
    assert (got - plain).abs().max() > 1e-3 * plain.abs().max()  # the rule changed something
    if kind is not None:
        expected = reference(model, kind).abs().amax(2)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,factory,kind", [c for c in CASES if c[2] in ("silu", "leaky_relu")])
def test_positive_grad_rule_keeps_the_derivative_below_zero(name, factory, kind):
    model = make(factory)
    x = images()
    with guided_activations(model, rule="positive_grad") as state:
        got = input_gradients(model, x)
    assert state.total >= 2
    torch.testing.assert_close(got, reference(model, kind, springenberg=False), rtol=1e-4, atol=1e-6)
    assert (got - reference(model, kind)).abs().max() > 1e-4  # the forward-input mask matters here


def test_relu_network_is_unchanged_by_the_generalisation():
    """On nn.ReLU the rule is Springenberg's exactly (also checked against pytorch-grad-cam elsewhere)."""
    model = make(lambda: nn.ReLU(inplace=True))
    with CAMExtractor(model, "guided_backprop") as ext:
        got = ext(images(), CLASSES)
    torch.testing.assert_close(got, reference(model, "relu").abs().amax(2), rtol=1e-4, atol=1e-6)


def test_functions_and_hooks_are_restored():
    originals = (F.relu, F.silu, torch.relu, torch.Tensor.relu)
    model = make(nn.SiLU)
    with pytest.raises(RuntimeError, match="boom"), guided_activations(model):
        raise RuntimeError("boom")
    assert (F.relu, F.silu, torch.relu, torch.Tensor.relu) == originals
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    fresh = make(nn.SiLU)  # never hooked: the plain gradient is back
    torch.testing.assert_close(input_gradients(model, images()), input_gradients(fresh, images()))


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid, nn.Identity], ids=["Tanh", "Sigmoid", "none"])
def test_a_model_without_a_reachable_activation_is_an_error(act):
    model = make(act)
    with CAMExtractor(model, "guided_backprop") as ext, pytest.raises(ValueError, match="no activation"):
        ext(images(), CLASSES)


def test_guided_gradcam_uses_the_rule_too():
    model = make(nn.SiLU)
    with CAMExtractor(model, "guided_gradcam", "conv2") as ext:
        got = ext(images(), CLASSES)
    with CAMExtractor(model, "gradcam", "conv2") as ext:
        cam = ext(images(), CLASSES)
    from wsl.cam import normalize_maps, upsample_maps

    cam = normalize_maps(upsample_maps(cam, (12, 12)), mode="minmax")
    torch.testing.assert_close(got, reference(model, "silu").abs().amax(2) * cam, rtol=1e-4, atol=1e-6)
