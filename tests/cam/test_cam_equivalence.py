"""wsl's maps against the peers (pytorch-grad-cam, torchcam) after pytorch-grad-cam's post-processing.

Two architectures with different heads: ResNet-18 (GAP + linear) and VGG-11 (flatten + MLP, in-place
ReLUs everywhere). Batch of 2 with different classes per image; random weights and inputs.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import (
    AblationCAM,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackpropReLUModel,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from torchcam.methods import CAM as TorchcamCAM

from wsl.cam import CAMExtractor

TOL = 1e-3
CLASSES = torch.tensor([[0, 3], [5, 1]])
# (target layer, input size); VGG's target is its last (in-place) ReLU
ARCHS = {"resnet18": ("layer4", 96), "vgg11": ("features.19", 64)}
PEERS = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request, build_model):
    layer, size = ARCHS[request.param]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return build_model(request.param), layer, x


@pytest.fixture
def ours(postprocess):
    """``ours(model, method, layer, x, **options)``: wsl's maps post-processed as pytorch-grad-cam's."""

    def run(model, method, layer, x, **kwargs) -> np.ndarray:
        with CAMExtractor(model, method, layer, **kwargs) as ext:
            maps = ext(x, CLASSES)
        b, k = maps.shape[:2]
        return postprocess(maps.flatten(0, 1), x.shape[-2:]).reshape(b, k, *x.shape[-2:])

    return run


def peer_maps(peer_cls, model, layer, x, **kwargs) -> np.ndarray:
    """pytorch-grad-cam's maps (B, K, H, W): one call per class column, a full targets list each time."""
    module = dict(model.named_modules())[layer]
    out = []
    with peer_cls(model=model, target_layers=[module], **kwargs) as cam:
        for k in range(CLASSES.shape[1]):
            out.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in CLASSES[:, k]]))
    return np.stack(out, 1)


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "gradcampp", "xgradcam", "layercam"])
def test_gradient_methods_match_pytorch_grad_cam(arch, ours, max_diff, method):
    model, layer, x = arch
    expected = peer_maps(PEERS[method], model, layer, x)
    got = ours(model, method, layer, x)
    assert got.max() > 0.5  # not a trivially empty map
    assert max_diff(got, expected) <= TOL


@pytest.mark.parametrize(
    "net",
    [
        pytest.param(("tiny", "features", 32), id="tiny"),
        pytest.param(("resnet18", "layer2", 64), id="resnet18", marks=pytest.mark.slow),
        pytest.param(("vgg11", "features.5", 32), id="vgg11", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_forward_only_methods_match_pytorch_grad_cam(build_model, ours, max_diff, net, method):
    """One pass per channel: a layer with few channels (128 for the torchvision nets) keeps them light."""
    name, layer, size = net
    model = build_model(name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    kwargs = {"batch_size": 64} if method == "ablationcam" else {}
    expected = peer_maps(PEERS[method], model, layer, x, **kwargs)
    got = ours(model, method, layer, x, batch_size=12)  # chunks that split the channels unevenly
    assert got.max() > 0.5
    assert max_diff(got, expected) <= TOL


def test_eigencam_matches_get_2d_projection_with_sign_rule(arch, ours, postprocess, max_diff):
    model, layer, x = arch
    store = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: store.setdefault("a", o.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    acts = store["a"].numpy()
    proj = get_2d_projection(acts)
    mean_map = acts.mean(1)
    for i in range(len(proj)):  # the sign rule of methods.md
        if ((proj[i] - proj[i].mean()) * (mean_map[i] - mean_map[i].mean())).sum() < 0:
            proj[i] = -proj[i]
    expected = postprocess(proj, x.shape[-2:])
    got = ours(model, "eigencam", layer, x)
    for k in range(CLASSES.shape[1]):  # class-agnostic: the same map for every class
        assert max_diff(got[:, k], expected) <= TOL


def guided_reference(model, x) -> np.ndarray:
    """pytorch-grad-cam's GuidedBackpropReLUModel (one image, one class per call), max |.| over RGB."""
    guided = GuidedBackpropReLUModel(copy.deepcopy(model), device="cpu")  # it swaps the model's ReLUs
    return np.stack(
        [
            np.stack([np.abs(guided(x[b : b + 1].clone(), int(c))).max(-1) for c in CLASSES[b]])
            for b in range(len(x))
        ]
    )


def test_guided_backprop_matches_pytorch_grad_cam(arch, ours, postprocess, max_diff):
    model, _, x = arch
    x = x[..., :64, :64]  # the reference runs a full backward per (image, class): keep it small
    ref = guided_reference(model, x)
    expected = postprocess(ref.reshape(-1, *ref.shape[2:]), x.shape[-2:]).reshape(ref.shape)
    assert max_diff(ours(model, "guided_backprop", None, x), expected) <= TOL


def test_guided_gradcam_matches_pytorch_grad_cam(arch, ours, postprocess, max_diff):
    model, layer, x = arch
    x = x[..., :64, :64]
    ref = guided_reference(model, x) * peer_maps(GradCAM, model, layer, x)  # Grad-CAM in [0, 1]
    expected = postprocess(ref.reshape(-1, *ref.shape[2:]), x.shape[-2:]).reshape(ref.shape)
    assert max_diff(ours(model, "guided_gradcam", layer, x), expected) <= TOL


@pytest.mark.parametrize("name, layer", [("resnet18", "layer4"), ("vgg11_gap", "features")])
def test_cam_matches_torchcam(build_model, postprocess, max_diff, name, layer):
    model = build_model(name)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    expected = []
    with TorchcamCAM(model, target_layer=layer, fc_layer="fc", input_shape=(3, 64, 64)) as ext:
        for k in range(CLASSES.shape[1]):
            with torch.no_grad():
                model(x)
            expected.append(ext(class_idx=CLASSES[:, k].tolist(), normalized=False)[0])
    expected = torch.stack(expected, 1)
    with CAMExtractor(model, "cam", layer, relu=False) as ext:
        signed = ext(x, CLASSES)
    assert torch.allclose(signed, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    size = x.shape[-2:]
    got, ref = postprocess(signed.flatten(0, 1), size), postprocess(expected.flatten(0, 1), size)
    assert max_diff(got, ref) <= TOL
