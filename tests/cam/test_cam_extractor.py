"""CAMExtractor's contract: API, model state, hooks, class handling, gradient flow and method properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wsl.cam import METHODS, CAMExtractor
from wsl.cam.base import batched_grad
from wsl.cam.methods import REGISTRY

GRADIENT_METHODS = ["gradcam", "hirescam", "gradcampp", "xgradcam", "layercam"]


@pytest.fixture(scope="module")
def tiny(build_model):
    return build_model("tiny")


@pytest.fixture(scope="module")
def x32():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_methods_are_listed_in_order():
    assert METHODS == (
        "cam",
        "gradcam",
        "hirescam",
        "gradcampp",
        "xgradcam",
        "layercam",
        "scorecam",
        "ablationcam",
        "eigencam",
        "guided_backprop",
        "guided_gradcam",
        "eigengradcam",
        "gradcam_elementwise",
        "fullgrad",
        "kpcacam",
        "finercam",
        "shapleycam",
        "randomcam",
        "smoothgradcampp",
        "sscam",
        "iscam",
    )


@pytest.mark.parametrize("method", METHODS)
def test_shapes_dtype_and_detached(tiny, x32, method):
    classes = torch.tensor([[0, 1], [2, 3], [4, 5]])
    with CAMExtractor(tiny, method, "features") as ext:
        maps = ext(x32, classes)
    size = (32, 32) if REGISTRY[method].pixel else (16, 16)
    assert maps.shape == (3, 2, *size)
    assert maps.dtype == torch.float32 and not maps.requires_grad
    assert torch.isfinite(maps).all() and (maps >= 0).all()


def test_all_classes_by_default(tiny, x32):
    maps = CAMExtractor(tiny, "gradcam", "features")(x32)
    assert maps.shape == (3, 6, 16, 16)
    every = torch.arange(6).expand(3, 6)
    assert torch.allclose(maps, CAMExtractor(tiny, "gradcam", "features")(x32, every))


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "guided_gradcam"])
def test_ragged_classes_match_the_padded_call(tiny, x32, method):
    ext = CAMExtractor(tiny, method, "features")
    ragged = ext(x32, [[0, 2], [5], []])
    assert [tuple(m.shape[:1]) for m in ragged] == [(2,), (1,), (0,)]
    full = ext(x32, torch.tensor([[0, 2], [5, 5], [1, 1]]))
    assert torch.allclose(ragged[0], full[0], atol=1e-6)
    assert torch.allclose(ragged[1], full[1, :1], atol=1e-6)
    from_numpy = ext(x32, np.array([[0, 2], [5, 5], [1, 1]]))  # lists in (any non-tensor), lists out
    assert isinstance(from_numpy, list) and torch.allclose(torch.stack(from_numpy), full, atol=1e-6)


@pytest.mark.parametrize(
    "classes",
    [
        torch.tensor([[0], [1]]),
        torch.tensor([0, 1, 2]),
        torch.tensor([[0.0], [1.0], [2.0]]),
        [[0], [1]],
        [[0], [1], "a"],
    ],
    ids=["too-few-rows", "1d", "float", "short-list", "not-ints"],
)
def test_classes_not_matching_the_batch_raise(tiny, x32, classes):
    with pytest.raises(ValueError, match="classes"):
        CAMExtractor(tiny, "gradcam", "features")(x32, classes)


def test_out_of_range_class_raises(tiny, x32):
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 6\)"):
        CAMExtractor(tiny, "gradcam", "features")(x32, [[0], [6], [1]])


def test_constructor_errors(tiny):
    with pytest.raises(ValueError, match="unknown CAM method"):
        CAMExtractor(tiny, "gradcam2", "features")
    with pytest.raises(ValueError, match="needs a target_layer"):
        CAMExtractor(tiny, "gradcam")
    with pytest.raises(ValueError, match="no module named"):
        CAMExtractor(tiny, "gradcam", "feature")
    with pytest.raises(ValueError, match="fc_layer"):
        CAMExtractor(tiny, "gradcam", "features", fc_layer="fc")
    assert CAMExtractor(tiny, "gradcam", tiny.features).layer_name == "features"


def test_state_is_restored_after_a_call_and_after_an_error(build_model, no_hooks, x32):
    model = build_model("tiny")
    model.train()
    model.features[0].weight.requires_grad_(False)
    model.features[3].eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    ext = CAMExtractor(model, "gradcam", "features")
    ext(x32, [[0], [1], [2]])
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert no_hooks(model)
    with pytest.raises(ValueError), ext:
        ext(x32, [[0], [7], [2]])  # fails after the forward pass, inside the hooks
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert no_hooks(model)
    assert all(p.grad is None for p in model.parameters())


def test_hooks_released_for_every_method(tiny, no_hooks, x32):
    for method in METHODS:
        CAMExtractor(tiny, method, "features")(x32[:1], [[1]])
        assert no_hooks(tiny), method


def test_exception_raised_by_the_model_releases_hooks_and_state(build_model, no_hooks):
    class Broken(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            self.net(x)
            raise RuntimeError("boom")

    model = Broken(build_model("tiny")).train()
    with pytest.raises(RuntimeError, match="boom"):
        CAMExtractor(model, "gradcam", "net.features")(torch.randn(1, 3, 16, 16), [[0]])
    assert no_hooks(model) and model.training and all(p.requires_grad for p in model.parameters())


def test_gradient_stops_at_the_target_layer(build_model):
    model = build_model("resnet18")
    seen = {}

    def spy(name):
        def hook(module, inputs, out):
            seen[name] = out.requires_grad

        return hook

    handles = [getattr(model, n).register_forward_hook(spy(n)) for n in ("conv1", "layer1", "layer3", "fc")]
    maps = CAMExtractor(model, "gradcam", "layer4")(torch.randn(2, 3, 64, 64), torch.tensor([[0, 1], [2, 3]]))
    for h in handles:
        h.remove()
    assert maps.abs().sum() > 0
    assert seen == {"conv1": False, "layer1": False, "layer3": False, "fc": True}
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_vgg_inplace_relu_after_the_target(build_model, method):
    """Target = VGG's last conv, followed by an in-place ReLU: A must stay the conv output."""
    model = build_model("vgg11")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[1, 4], [0, 2]])
    got = CAMExtractor(model, method, "features.18")(x, classes)
    with torch.no_grad():
        a = model.features[:19](x)
    a.requires_grad_(True)
    logits = model.classifier(torch.flatten(model.avgpool(model.features[19:](a.clone())), 1))
    for k in range(2):
        (g,) = torch.autograd.grad(logits.gather(1, classes[:, k : k + 1]).sum(), a, retain_graph=True)
        w = g.mean((2, 3), keepdim=True) if method == "gradcam" else g
        expected = (w * a).sum(1).clamp(min=0).detach()
        assert torch.allclose(got[:, k], expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))


def test_hirescam_signed_map_sums_to_logit_minus_bias():
    """HiResCAM's guarantee (Draelos 2020) for a flatten + linear head."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 5),
    )
    x = torch.randn(3, 3, 16, 16)
    maps = CAMExtractor(model, "hirescam", "2", relu=False)(x)
    with torch.no_grad():
        expected = model(x) - model[4].bias
    assert (maps < 0).any()  # really signed
    assert torch.allclose(maps.sum((2, 3)), expected, atol=1e-5)


def test_cam_gradcam_hirescam_proportional_on_gap_linear(build_model):
    """With a GAP + linear head: ReLU(CAM) / (h w) == Grad-CAM == HiResCAM (methods.md)."""
    model = build_model("resnet18")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    classes = torch.tensor([[0, 5], [3, 1]])
    cam = CAMExtractor(model, "cam", "layer4")(x, classes)
    grad = CAMExtractor(model, "gradcam", "layer4")(x, classes)
    hires = CAMExtractor(model, "hirescam", "layer4")(x, classes)
    hw = cam.shape[-1] * cam.shape[-2]
    scale = float(cam.abs().max())
    assert scale > 0
    assert torch.allclose(cam / hw, grad, atol=1e-5 * scale)
    assert torch.allclose(grad, hires, atol=1e-5 * scale)


def test_cam_refuses_other_heads(build_model):
    with pytest.raises(ValueError, match="global average pooling"):
        CAMExtractor(build_model("vgg11"), "cam", "features.19")(torch.randn(1, 3, 32, 32), [[0]])
    with pytest.raises(ValueError, match="not an nn.Linear"):
        CAMExtractor(build_model("resnet18"), "cam", "layer4", fc_layer="avgpool")(
            torch.randn(1, 3, 32, 32), [[0]]
        )


@pytest.mark.parametrize("method", [m for m in METHODS if m != "guided_backprop"])
def test_all_zero_activations_give_zero_maps_not_nan(build_model, method):
    model = build_model("tiny")
    with torch.no_grad():
        model.features[3].weight.zero_()
        model.features[3].bias.fill_(-1.0)  # the ReLU after it outputs zeros everywhere
    maps = CAMExtractor(model, method, "features")(torch.randn(2, 3, 16, 16), [[0, 1], [2]])
    for m in maps:
        assert torch.isfinite(m).all() and (m == 0).all()


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_zero_gradient_gives_zero_maps_not_nan(build_model, method):
    model = build_model("tiny")
    with torch.no_grad():
        model.fc.weight.zero_()
    maps = CAMExtractor(model, method, "features")(torch.randn(2, 3, 16, 16))
    assert torch.isfinite(maps).all() and (maps == 0).all()


def test_relu_switch_keeps_the_sign(tiny, x32):
    signed = CAMExtractor(tiny, "gradcam", "features", relu=False)(x32)
    clipped = CAMExtractor(tiny, "gradcam", "features")(x32)
    assert (signed < 0).any()
    assert torch.equal(signed.clamp(min=0), clipped)


def test_works_inside_no_grad_and_inference_mode(tiny, x32):
    ext = CAMExtractor(tiny, "gradcam", "features")
    expected = ext(x32, [[0], [1], [2]])
    with torch.no_grad():
        assert torch.equal(ext(x32, [[0], [1], [2]])[1], expected[1])
    with torch.inference_mode():
        assert torch.equal(ext(x32, [[0], [1], [2]])[1], expected[1])


def test_target_layer_run_twice_is_refused(build_model):
    with pytest.raises(ValueError, match="more than once"):
        CAMExtractor(build_model("resnet18"), "gradcam", "layer4.1.relu")(torch.randn(1, 3, 32, 32), [[0]])


def test_target_layer_not_on_the_path_is_refused(tiny):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.unused = tiny, nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.net(x)

    with pytest.raises(ValueError, match="did not run"):
        CAMExtractor(TwoHeads(), "gradcam", "unused")(torch.randn(1, 3, 16, 16), [[0]])


def test_mask_is_for_segmentation_models_only(tiny, x32):
    with pytest.raises(ValueError, match="segmentation"):
        CAMExtractor(tiny, "gradcam", "features")(x32, [[0], [1], [2]], mask=torch.ones(3, 32, 32))


def test_batched_grad_equals_per_class_backward_and_falls_back():
    class ItemInBackward(torch.autograd.Function):
        """A backward that vmap cannot batch (it calls .item())."""

        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return g * (2.0 if g.abs().sum().item() >= 0 else 0.0)

    a = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(5, 3)
    expected = torch.stack([torch.autograd.grad((2 * a @ w)[:, k].sum(), a)[0] for k in range(3)])
    assert torch.allclose(batched_grad(2 * a @ w, a), expected)
    with pytest.warns(UserWarning, match="one backward per class"):
        got = batched_grad(ItemInBackward.apply(a) @ w, a)
    assert torch.allclose(got, expected)
