"""Several target layers in one call: pytorch-grad-cam's aggregation, one forward, one batched gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from peers import OutOnly
from pytorch_grad_cam import GradCAM, LayerCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget
from torch import nn

import wsl.cam.extractor as extractor_module
from wsl.cam import CAMExtractor
from wsl.cam.layers import combine_layer_maps

DEEPLAB_LAYERS = [f"backbone.layer{i}" for i in range(1, 5)]


@pytest.fixture(scope="module")
def deeplab():
    """torchvision's DeepLabV3-ResNet50 with random weights (built on the spot: no download)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=5
        ).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = model(x)["out"].argmax(1)
    counts = [torch.bincount(p.flatten(), minlength=5) for p in pred]
    classes = torch.stack([c.argsort(descending=True, stable=True)[:2] for c in counts])
    return model, x, pred, classes


def test_deeplabv3_layer1_to_4_matches_pytorch_grad_cam(deeplab):
    """The seed document's recipe: Grad-CAM of layer1..layer4 with the class's argmax mask as target."""
    model, x, pred, classes = deeplab
    modules = [model.get_submodule(n) for n in DEEPLAB_LAYERS]
    expected = []
    with GradCAM(model=OutOnly(model), target_layers=modules) as cam:
        for k in range(classes.shape[1]):
            targets = [
                SemanticSegmentationTarget(int(classes[b, k]), (pred[b] == classes[b, k]).float().numpy())
                for b in range(len(x))
            ]
            expected.append(cam(input_tensor=x, targets=targets))
    expected = np.stack(expected, 1)
    with CAMExtractor(model, "gradcam", DEEPLAB_LAYERS, combine_size="input") as ext:
        maps = ext(x, classes)
    assert maps.shape == (2, 2, 64, 64) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    got = scale_cam_image(maps.flatten(0, 1).numpy()).reshape(expected.shape)  # its final min-max
    assert got.max() > 0.5
    assert float(np.abs(got - expected).max()) <= 1e-4


@pytest.mark.parametrize("peer, method", [(GradCAM, "gradcam"), (LayerCAM, "layercam")])
def test_classifier_layers_match_pytorch_grad_cam(build_model, peer, method):
    """Layers of different resolutions (layer2 at 1/8, layer4 at 1/32) of a ResNet-18."""
    model = build_model("resnet18")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    classes = torch.tensor([[1, 4], [0, 5]])
    layers = ["layer2", "layer3.1.conv2", "layer4"]
    with peer(model=model, target_layers=[model.get_submodule(n) for n in layers]) as cam:
        expected = np.stack(
            [cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in col]) for col in classes.T],
            1,
        )
    got = CAMExtractor(model, method, layers, combine_size="input")(x, classes)
    got = scale_cam_image(got.flatten(0, 1).numpy()).reshape(expected.shape)
    assert float(np.abs(got - expected).max()) <= 1e-4


TINY = ("tiny", ["features.0", "features.3"])  # in-place ReLUs right after both targets
RESNET = ("resnet18", ["layer3", "layer4.0", "layer4"])  # layer4.0 is inside layer4
CASES = [(m, *TINY) for m in ("gradcam", "gradcampp", "hirescam", "scorecam", "ablationcam", "eigencam")]
CASES += [(m, *RESNET) for m in ("gradcam", "gradcampp", "hirescam", "ablationcam", "eigencam")]


@pytest.mark.parametrize("method, model_name, layers", CASES)
def test_equals_the_single_layer_maps_combined(build_model, method, model_name, layers):
    model = build_model(model_name)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[0, 3], [5, 1]])
    singles = [CAMExtractor(model, method, layer, batch_size=512)(x, classes) for layer in layers]
    multi = CAMExtractor(model, method, layers, batch_size=512)(x, classes)
    expected = combine_layer_maps(singles, max((m.shape[-2:] for m in singles), key=lambda s: s[0] * s[1]))
    assert multi.shape == expected.shape
    assert float((multi - expected).abs().max()) <= 1e-6
    assert float(multi.max()) > 0.3  # not all zero


def test_one_forward_and_one_batched_gradient(build_model, monkeypatch):
    model = build_model("resnet18")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    forwards, grads = [], []
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    real = extractor_module.batched_grads

    def counting(scores, inputs, columns, **kw):
        grads.append((len(inputs), len(columns)))
        return real(scores, inputs, columns, **kw)

    monkeypatch.setattr(extractor_module, "batched_grads", counting)
    try:
        CAMExtractor(model, "gradcam", ["layer1", "layer2", "layer3", "layer4"], max_grad_mb=1024)(x)
    finally:
        handle.remove()
    assert len(forwards) == 1
    assert grads == [(4, 6)]  # every layer and every class in one call


def test_a_list_of_one_layer_is_that_layer(build_model):
    model = build_model("resnet18")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    one = CAMExtractor(model, "gradcam", "layer3")(x)
    listed = CAMExtractor(model, "gradcam", ["layer3"])(x)
    assert torch.equal(one, listed) and one.shape == (2, 6, 2, 2)


def test_ragged_classes_and_sizes(build_model):
    model = build_model("resnet18")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ext = CAMExtractor(model, "gradcam", ["layer3", "layer4"])
    ragged = ext(x, [[1, 2, 3], [4]])
    padded = ext(x, torch.tensor([[1, 2, 3], [4, 4, 4]]))
    assert [m.shape for m in ragged] == [(3, 2, 2), (1, 2, 2)]
    assert torch.allclose(ragged[0], padded[0], atol=1e-6) and torch.allclose(
        ragged[1], padded[1, :1], atol=1e-6
    )
    assert CAMExtractor(model, "gradcam", ["layer3", "layer4"], combine_size=(5, 7))(x).shape == (2, 6, 5, 7)
    assert CAMExtractor(model, "gradcam", ["layer3", "layer4"], combine_size="input")(x).shape == (
        2,
        6,
        32,
        32,
    )


def test_cam_method_runs_layer_by_layer_and_refuses_a_non_gap_layer(build_model):
    model = build_model("resnet18")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="global average pooling"):
        CAMExtractor(model, "cam", ["layer3", "layer4"])(x)


def test_errors(build_model, no_hooks):
    model = build_model("resnet18")
    with pytest.raises(ValueError, match="pixel maps"):
        CAMExtractor(model, "guided_gradcam", ["layer3", "layer4"])
    with pytest.raises(ValueError, match="named twice"):
        CAMExtractor(model, "gradcam", ["layer4", model.layer4])
    with pytest.raises(ValueError, match="combine_size"):
        CAMExtractor(model, "gradcam", ["layer3", "layer4"], combine_size="smallest")
    tiny = build_model("tiny")
    tiny.unused = nn.Conv2d(16, 16, 1)  # never run by forward
    with pytest.raises(ValueError, match="'unused' did not run"):
        CAMExtractor(tiny, "gradcam", ["features.3", "unused"])(torch.randn(1, 3, 16, 16))
    assert no_hooks(model) and no_hooks(tiny)
