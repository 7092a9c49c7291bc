"""The methods of issue 13 against their peers (pytorch-grad-cam 1.5.7, torchcam 0.5.0) or, where a peer
differs by convention, against a direct implementation of the formula; plus their properties.

Small networks (the tiny CNN at 32 px, ResNet-18 at 64 px), batch 2 with different classes per image,
random weights. Maps are compared after pytorch-grad-cam's post-processing (``postprocess``) within 1e-3.
SVD-based maps have an arbitrary sign in pytorch-grad-cam: its projection is wrapped with wsl's sign rule
(documented in each method) before comparing.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_grad_cam.base_cam as pgc_base
import pytorch_grad_cam.eigen_grad_cam as pgc_eigengrad
import pytorch_grad_cam.grad_cam_elementwise as pgc_elementwise
import pytorch_grad_cam.hirescam as pgc_hires
import pytorch_grad_cam.kpca_cam as pgc_kpca
import pytorch_grad_cam.layer_cam as pgc_layer
import pytorch_grad_cam.random_cam as pgc_random
import torch
from pytorch_grad_cam import (
    KPCA_CAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    HiResCAM,
    LayerCAM,
    RandomCAM,
    ShapleyCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_kernel
from torch import nn
from torchcam.methods import ISCAM as TorchcamISCAM
from torchcam.methods import SSCAM as TorchcamSSCAM
from torchcam.methods import SmoothGradCAMpp as TorchcamSmoothGradCAMpp

from wsl.cam import CAMExtractor
from wsl.cam.methods import COST, METHOD_OPTIONS, METHODS, build_method
from wsl.cam.methods._common import aug_smooth, generator

TOL = 1e-3
CLASSES = torch.tensor([[0, 3], [5, 1]])
NEW = [
    "eigengradcam", "gradcam_elementwise", "fullgrad", "kpcacam", "finercam", "shapleycam", "randomcam",
    "smoothgradcampp", "sscam", "iscam",
]  # fmt: skip


class SmoothHead(nn.Module):
    """The tiny CNN's features, then a 1x1 convolution with tanh before GAP + linear: a head whose second
    derivative w.r.t. ``features`` is not zero (ShapleyCAM's correction term)."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Conv2d(16, 16, 1), nn.Tanh())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.features(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny(build_model):
    return build_model("tiny"), torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def ours(model, name, layer, x, classes=CLASSES, relu=True, **options) -> torch.Tensor:
    """wsl's maps with ``build_method(name, **options)``."""
    with CAMExtractor(model, name, layer, relu=relu, options=options) as ext:
        return ext(x, classes)


def peer_maps(peer_cls, model, layer, x, targets=None, call=None, **kwargs) -> np.ndarray:
    """pytorch-grad-cam's maps (B, K, H, W): one call per class column."""
    module = dict(model.named_modules())[layer]
    out = []
    with peer_cls(model=model, target_layers=[module], **kwargs) as cam:
        for k in range(CLASSES.shape[1]):
            t = [ClassifierOutputTarget(int(c)) for c in CLASSES[:, k]] if targets is None else targets(k)
            out.append(cam(input_tensor=x, targets=t) if call is None else call(cam, x, t))
    return np.stack(out, 1)


def post(postprocess, maps, size) -> np.ndarray:
    b, k = maps.shape[:2]
    return postprocess(maps.flatten(0, 1), size).reshape(b, k, *size)


def signed(projection, reference):
    """A pytorch-grad-cam projection function wrapped with wsl's sign rule: each map correlates positively
    with ``reference(activation_batch)`` ``(B, h, w)``."""

    def wrapped(batch, *args, **kwargs):
        proj = projection(batch, *args, **kwargs)
        ref = reference(np.asarray(batch))
        for i in range(len(proj)):
            if ((proj[i] - proj[i].mean()) * (ref[i] - ref[i].mean())).sum() < 0:
                proj[i] = -proj[i]
        return proj

    return wrapped


def channel_sum(batch):
    return batch.sum(1)


# ------------------------------------------------------------------------------ pytorch-grad-cam peers


@pytest.mark.parametrize(
    "net", [("tiny", "features", 32), ("resnet18", "layer4", 64)], ids=["tiny", "resnet18"]
)
def test_eigengradcam_and_elementwise_match_pytorch_grad_cam(
    build_model, postprocess, max_diff, monkeypatch, net
):
    name, layer, size = net
    model = build_model(name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(pgc_eigengrad, "get_2d_projection", signed(get_2d_projection, channel_sum))
    for method, peer in (("eigengradcam", EigenGradCAM), ("gradcam_elementwise", GradCAMElementWise)):
        got = post(postprocess, ours(model, method, layer, x), x.shape[-2:])
        assert got.max() > 0.5
        assert max_diff(got, peer_maps(peer, model, layer, x)) <= TOL, method
    # not Grad-CAM in disguise: the element-wise ReLU changes the map
    plain = post(postprocess, ours(model, "hirescam", layer, x), x.shape[-2:])
    assert (
        max_diff(post(postprocess, ours(model, "gradcam_elementwise", layer, x), x.shape[-2:]), plain) > 1e-2
    )


@pytest.mark.parametrize("kernel", ["sigmoid", "rbf"])
def test_kpcacam_matches_pytorch_grad_cam(tiny, postprocess, max_diff, monkeypatch, kernel):
    model, x = tiny

    def mean_map(batch):
        return batch.mean(1)

    monkeypatch.setattr(pgc_kpca, "get_2d_projection_kernel", signed(get_2d_projection_kernel, mean_map))
    got = ours(model, "kpcacam", "features", x, kernel=kernel)
    assert torch.equal(got[:, 0], got[:, 1])  # class-agnostic
    expected = peer_maps(KPCA_CAM, model, "features", x, kernel=kernel)
    assert max_diff(post(postprocess, got, x.shape[-2:]), expected) <= TOL


def test_randomcam_equals_pytorch_grad_cam_given_the_same_weights(tiny, postprocess, max_diff, monkeypatch):
    """The peer draws its weights from np.random.uniform(-1, 1, (B, C)) per call: hand it wsl's draw."""
    model, x = tiny
    w = torch.rand((2, 2, 16), generator=generator(7)) * 2 - 1  # what RandomCAM(seed=7) draws
    calls = iter(range(2))
    monkeypatch.setattr(pgc_random.np.random, "uniform", lambda *a, **k: w[:, next(calls)].double().numpy())
    expected = peer_maps(RandomCAM, model, "features", x)
    assert (
        max_diff(post(postprocess, ours(model, "randomcam", "features", x, seed=7), x.shape[-2:]), expected)
        <= TOL
    )


def test_randomcam_is_a_seeded_random_weighting(tiny):
    """Properties: the map is sum_k w_k A_k with every w_k in [-1, 1] (recovered by least squares from the
    signed map), different per class; the same seed gives the same maps, another seed other maps."""
    model, x = tiny
    signed_maps = ours(model, "randomcam", "features", x, relu=False, seed=3)
    assert torch.equal(signed_maps, ours(model, "randomcam", "features", x, relu=False, seed=3))
    assert not torch.allclose(signed_maps, ours(model, "randomcam", "features", x, relu=False, seed=4))
    store = {}
    handle = model.features.register_forward_hook(lambda m, i, o: store.setdefault("a", o.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    a = store["a"].flatten(2).transpose(1, 2).double()  # (B, h*w, C): 256 positions, 16 channels
    for b in range(2):
        w = torch.linalg.lstsq(a[b], signed_maps[b].flatten(1).T.double()).solution  # (C, K)
        assert torch.allclose(a[b] @ w, signed_maps[b].flatten(1).T.double(), atol=1e-4)
        assert w.abs().max() <= 1 + 1e-3 and not torch.allclose(w[:, 0], w[:, 1])


def test_finercam_matches_pytorch_grad_cam(tiny, postprocess, max_diff, monkeypatch):
    """Each requested class against the classes ranked 1-3 by |logit difference|, as the peer's
    FinerWeightedTarget (given explicitly, since the peer alone picks the top-1 class)."""
    model, x = tiny
    with torch.no_grad():
        logits = model(x).numpy()

    def targets(k):
        out = []
        for b, c in enumerate(CLASSES[:, k].tolist()):
            order = np.argsort(np.abs(logits[b] - logits[b, c]), kind="stable")
            out.append(FinerWeightedTarget(c, [int(j) for j in order[1:4]], 1.0))
        return out

    expected = peer_maps(FinerCAM, model, "features", x, targets=targets)
    got = post(postprocess, ours(model, "finercam", "features", x), x.shape[-2:])
    assert got.max() > 0.5 and max_diff(got, expected) <= TOL
    # alpha = 0 explains y_c itself: Grad-CAM
    plain = post(postprocess, ours(model, "gradcam", "features", x), x.shape[-2:])
    assert (
        max_diff(
            post(postprocess, ours(model, "finercam", "features", x, finer_alpha=0.0), x.shape[-2:]), plain
        )
        <= TOL
    )
    assert max_diff(got, plain) > 1e-2
    monkeypatch.setattr(pgc_base, "get_2d_projection", signed(get_2d_projection, channel_sum))

    def call(cam, x, t):
        return cam(input_tensor=x, targets=t, eigen_smooth=True)

    smooth = post(postprocess, ours(model, "finercam", "features", x, eigen_smooth=True), x.shape[-2:])
    assert max_diff(smooth, peer_maps(FinerCAM, model, "features", x, targets=targets, call=call)) <= TOL


def test_shapleycam_matches_pytorch_grad_cam(postprocess, max_diff):
    torch.manual_seed(0)
    model = SmoothHead().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    got = post(postprocess, ours(model, "shapleycam", "features", x), x.shape[-2:])
    assert got.max() > 0.5
    assert max_diff(got, peer_maps(ShapleyCAM, model, "features", x)) <= TOL
    # the second-order term matters on this head (else the test could not tell it from Grad-CAM)
    assert max_diff(got, post(postprocess, ours(model, "gradcam", "features", x), x.shape[-2:])) > 1e-2


def test_shapleycam_is_gradcam_on_a_piecewise_linear_head(tiny):
    model, x = tiny
    assert torch.allclose(
        ours(model, "shapleycam", "features", x), ours(model, "gradcam", "features", x), atol=1e-7
    )


@pytest.mark.parametrize(
    "net", [("tiny", 32), ("resnet18", 64)], ids=["tiny-conv-biases", "resnet18-batchnorm"]
)
def test_fullgrad_matches_pytorch_grad_cam(build_model, postprocess, max_diff, net):
    name, size = net
    model = build_model(name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    got = ours(model, "fullgrad", "features" if name == "tiny" else "layer4", x)
    assert got.shape == (2, 2, size, size)
    expected = peer_maps(FullGrad, model, "features" if name == "tiny" else "layer4", x)
    assert max_diff(post(postprocess, got, x.shape[-2:]), expected) <= TOL


def test_fullgrad_needs_no_target_layer(tiny):
    model, x = tiny
    assert torch.equal(ours(model, "fullgrad", None, x), ours(model, "fullgrad", "features", x))


def test_fullgrad_completeness(build_model):
    """Srinivas & Fleuret's Eq. 2 on a ReLU network: y_c = <dy/dx, x> + sum over every bias <dy/db, b>
    (BatchNorm's effective bias included), the decomposition FullGrad's map is built from."""
    from wsl.cam.methods.fullgrad import bias_layers, effective_bias

    model = build_model("resnet18")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    outs = {}
    layers = dict(bias_layers(model))
    handles = [m.register_forward_hook(lambda m, i, o, n=n: outs.setdefault(n, o)) for n, m in layers.items()]
    for m in layers.values():
        m.register_forward_hook(lambda m, i, o: o.clone())
    y = model(x)[0, 2]
    for h in handles:
        h.remove()
    grads = torch.autograd.grad(y, [x, *outs.values(), model.fc.bias], allow_unused=True)
    total = (grads[0] * x).sum() + (grads[-1] * model.fc.bias).sum()
    for n, g in zip(outs, grads[1:-1]):
        total = total + (g.sum((0, 2, 3)) * effective_bias(layers[n])).sum()
    assert torch.allclose(total, y, rtol=1e-4, atol=1e-4)


def test_fullgrad_refuses_models_with_other_biases():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.GroupNorm(2, 4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    with pytest.raises(ValueError, match=r"fullgrad.*1 \(GroupNorm\)"):
        ours(model, "fullgrad", "0", torch.randn(1, 3, 16, 16), torch.tensor([[0]]))
    no_bias = nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(ValueError, match="has none"):
        ours(no_bias, "fullgrad", "0", torch.randn(1, 3, 16, 16), torch.tensor([[0]]))


# --------------------------------------------------------------------------------- eigen_smooth, aug_smooth


@pytest.mark.parametrize(
    "method, peer, module",
    [
        ("gradcam", GradCAM, pgc_base),
        ("hirescam", HiResCAM, pgc_hires),
        ("layercam", LayerCAM, pgc_layer),
        ("gradcam_elementwise", GradCAMElementWise, pgc_elementwise),
    ],
)
def test_eigen_smooth_matches_pytorch_grad_cam(
    tiny, postprocess, max_diff, monkeypatch, method, peer, module
):
    model, x = tiny
    monkeypatch.setattr(module, "get_2d_projection", signed(get_2d_projection, channel_sum))

    def call(cam, x, t):
        return cam(input_tensor=x, targets=t, eigen_smooth=True)

    got = post(postprocess, ours(model, method, "features", x, eigen_smooth=True), x.shape[-2:])
    assert got.max() > 0.5
    assert max_diff(got, peer_maps(peer, model, "features", x, call=call)) <= TOL
    assert max_diff(got, post(postprocess, ours(model, method, "features", x), x.shape[-2:])) > 1e-2


def test_eigen_smooth_is_refused_where_it_means_nothing():
    for name in (
        "eigencam",
        "eigengradcam",
        "kpcacam",
        "fullgrad",
        "guided_backprop",
        "guided_gradcam",
        "cam",
    ):
        with pytest.raises(ValueError, match="eigen_smooth does not apply"):
            build_method(name, eigen_smooth=True)


def test_aug_smooth_matches_pytorch_grad_cam(tiny, max_diff):
    """At a layer with the input's resolution (features.1, 32x32) both scale each augmentation's map at
    the same resolution; the peer's result is a mean of [0, 1] maps, ours too."""
    model, x = tiny
    with CAMExtractor(model, "gradcam", "features.1", aug_smooth=True) as ext:
        got = ext(x, CLASSES).numpy()
    plain = CAMExtractor(model, "gradcam", "features.1")
    assert np.allclose(got, aug_smooth(lambda xx, m: plain(xx, CLASSES), x).numpy())  # the extractor's option

    def call(cam, x, t):
        return cam(input_tensor=x, targets=t, aug_smooth=True)

    expected = peer_maps(GradCAM, model, "features.1", x, call=call)
    assert got.max() > 0.5 and max_diff(got, expected) <= TOL
    assert max_diff(got, peer_maps(GradCAM, model, "features.1", x)) > 1e-2  # the augmentations matter


# ------------------------------------------------------------------------- the Score-CAM family, torchcam


def torchcam_maps(cls, model, layer, x, seed=None, **kwargs) -> torch.Tensor:
    """torchcam's raw maps (B, K, h, w), one call per class column (reseeded before each when ``seed``)."""
    out = []
    with cls(model, target_layer=layer, input_shape=tuple(x.shape[1:]), **kwargs) as ext:
        for k in range(CLASSES.shape[1]):
            if seed is not None:
                torch.manual_seed(seed)
            with torch.no_grad():
                model(x)
            out.append(ext(class_idx=CLASSES[:, k].tolist(), normalized=False)[0])
    return torch.stack(out, 1)


def test_scorecam_probability_is_the_papers_weighting(tiny, max_diff):
    """score=probability: w_k = softmax(model(x * mask_k))[c], map ReLU(sum_k w_k A_k) (the paper's code),
    checked against a loop over images, classes and channels."""
    from wsl.cam.methods._common import score_masks

    model, x = tiny
    got = ours(model, "scorecam", "features", x, score="probability")
    store = {}
    handle = model.features.register_forward_hook(lambda m, i, o: store.setdefault("a", o.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    a = store["a"]
    for b in range(2):
        masks = score_masks(a[b], x.shape[-2:])
        for k, c in enumerate(CLASSES[b].tolist()):
            with torch.no_grad():
                w = torch.stack([model(x[b : b + 1] * m).softmax(1)[0, c] for m in masks])
            expected = torch.relu((w[:, None, None] * a[b]).sum(0))
            assert torch.allclose(got[b, k], expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got, ours(model, "scorecam", "features", x))


@pytest.mark.parametrize("name", ["sscam", "iscam"])
def test_one_noiseless_pass_is_scorecam(tiny, name):
    model, x = tiny
    opts = {"samples": 1} | ({"noise_std": 0.0} if name == "sscam" else {})
    for score in ("logit_softmax", "probability"):
        assert torch.allclose(
            ours(model, name, "features", x, score=score, **opts),
            ours(model, "scorecam", "features", x, score=score),
            rtol=1e-5, atol=1e-7,
        )  # fmt: skip


def test_sscam_matches_torchcam_with_the_same_noise(tiny, postprocess, max_diff):
    """At features.1 (the input's resolution, where the two mask conventions coincide) and with the noise
    drawn from the same seed in the same order."""
    model, x = tiny
    got = ours(model, "sscam", "features.1", x, samples=3, noise_std=0.5, seed=11)
    expected = torchcam_maps(
        TorchcamSSCAM, model, "features.1", x, seed=11, num_samples=3, std=0.5, batch_size=16
    )
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    assert not torch.allclose(got, ours(model, "sscam", "features.1", x, samples=3, noise_std=0.5, seed=12))


def test_iscam_matches_torchcam(tiny, max_diff):
    model, x = tiny
    got = ours(model, "iscam", "features.1", x, samples=4)
    expected = torchcam_maps(TorchcamISCAM, model, "features.1", x, num_samples=4, batch_size=16)
    assert got.max() > 0 and torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


# ------------------------------------------------------------------------------------ Smooth Grad-CAM++


def test_smoothgradcampp_one_noiseless_sample_is_gradcampp(tiny):
    model, x = tiny
    got = ours(model, "smoothgradcampp", "features.3", x, samples=1, noise_std=0.0)
    assert torch.allclose(got, ours(model, "gradcampp", "features.3", x), rtol=1e-5, atol=1e-8)


def test_smoothgradcampp_is_the_formula_with_the_same_noise(tiny):
    """A direct loop over images, classes and noise copies (one plain backward each), the noise drawn as
    the method draws it: ``samples`` draws of (B, 3, H, W) from the seed."""
    model, x = tiny
    samples, std, seed = 3, 0.4, 5
    got = ours(model, "smoothgradcampp", "features.3", x, samples=samples, noise_std=std, seed=seed)
    gen = generator(seed)
    noisy = [x + torch.randn(x.shape, generator=gen) * std for _ in range(samples)]
    store = {}

    def keep(m, i, o):
        store["a"] = o
        if o.requires_grad:
            o.retain_grad()
        return o.clone()  # the in-place ReLU after the layer edits the clone

    handle = model.features[3].register_forward_hook(keep)
    with torch.no_grad():
        model(x)
    clean = store["a"].detach()
    for b in range(2):
        for k, c in enumerate(CLASSES[b].tolist()):
            gs = []
            for xn in noisy:
                model(xn[b : b + 1])[0, c].backward()
                gs.append(store["a"].grad[0].detach())
            g = torch.stack(gs)
            d1, d2, d3 = g.mean(0), g.pow(2).mean(0), g.pow(3).mean(0)
            alpha = d2 / (2 * d2 + d3 * clean[b].sum((1, 2))[:, None, None] + 1e-6)
            alpha = torch.where(d2 != 0, alpha, torch.zeros_like(alpha))
            w = (alpha * d1.clamp(min=0)).sum((1, 2))
            expected = torch.relu((w[:, None, None] * clean[b]).sum(0))
            assert torch.allclose(got[b, k], expected, rtol=1e-4, atol=1e-6 * float(expected.max()))
    handle.remove()
    model.zero_grad(set_to_none=True)
    assert not torch.allclose(got, ours(model, "gradcampp", "features.3", x))


def test_smoothgradcampp_weights_match_torchcam_where_conventions_agree(tiny):
    """At the layer before global average pooling the gradient is the same at every position and for every
    noisy copy, so torchcam's denominator and last-copy ReLU agree with Grad-CAM++'s; its weights (with
    the same eps) times the clean activations are then wsl's map."""
    model, x = tiny
    got = ours(model, "smoothgradcampp", "features", x, samples=2, noise_std=0.3, seed=1)
    store = {}
    handle = model.features.register_forward_hook(lambda m, i, o: store.setdefault("a", o.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    with TorchcamSmoothGradCAMpp(
        model, target_layer="features", num_samples=2, std=0.3, input_shape=(3, 32, 32)
    ) as ext:
        for k in range(2):
            torch.manual_seed(1)
            model(x)
            w = ext._get_weights(CLASSES[:, k].tolist(), None, eps=1e-6)[0]
            expected = torch.relu(torch.einsum("bc,bchw->bhw", w, store["a"]))
            assert torch.allclose(got[:, k], expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


# ---------------------------------------------------------------------------------- registry and options


def test_every_method_is_registered_with_a_cost_and_runs(tiny):
    model, x = tiny
    assert set(NEW) <= set(METHODS) and set(COST) == set(METHODS)
    for name in NEW:
        opts = {"samples": 1} if name in ("sscam", "iscam", "smoothgradcampp") else {}
        maps = ours(model, name, "features", x, **opts)
        size = (32, 32) if name == "fullgrad" else (16, 16)
        assert maps.shape == (2, 2, *size) and torch.isfinite(maps).all() and maps.max() > 0, name


def test_options_are_checked():
    with pytest.raises(ValueError, match="unknown CAM method option"):
        build_method("gradcam", smooth=True)
    with pytest.raises(ValueError, match="score must be one of"):
        build_method("scorecam", score="prob")
    with pytest.raises(ValueError, match="kernel must be one of"):
        build_method("kpcacam", kernel="laplace")
    with pytest.raises(ValueError, match="finer_compare"):
        build_method("finercam", finer_compare=[0, 1])
    # an option a method does not take is ignored (a config carries every option for every method)
    assert build_method("gradcam", score="probability", samples=3).name == "gradcam"
    assert set(METHOD_OPTIONS) >= {"eigen_smooth", "score", "samples", "noise_std", "seed"}


def test_config_options_reach_the_method(compose):
    """conf/cam keys -> stage=cams settings -> the built method (every key of METHOD_OPTIONS is in conf)."""
    from wsl.stages import common

    cfg = compose(["stage=cams", "cam=sscam", "cam.samples=2", "cam.score=probability", "cam.seed=9"])
    settings = common.cam_settings(cfg)
    assert set(settings.options) == set(METHOD_OPTIONS)
    method = build_method("sscam", **settings.options)
    assert (method.samples, method.std, method.score, method.seed) == (2, 2.0, "probability", 9)
    eigen = build_method(
        "gradcam", **common.cam_settings(compose(["stage=cams", "cam.eigen_smooth=true"])).options
    )
    assert type(eigen).__name__ == "EigenSmooth"
