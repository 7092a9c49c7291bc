"""Segmentation targets (DeepLabV3) and vision transformers (reshape_transform) against pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from peers import OutOnly
from pytorch_grad_cam import GradCAM, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

from wsl.cam import CAMExtractor

TOL = 1e-3


SEG_MODELS = [
    pytest.param(("tiny_fcn", "backbone", 32), id="tiny_fcn"),
    pytest.param(("deeplabv3_resnet50", "backbone.layer4", 64), id="deeplabv3"),  # about 4 s per test
]


@pytest.fixture(scope="module", params=SEG_MODELS)
def segmenter(request, build_model):
    name, layer, size = request.param
    if name == "tiny_fcn":
        model = build_model(name)
    else:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = torchvision.models.segmentation.deeplabv3_resnet50(
                weights=None, weights_backbone=None, num_classes=5
            ).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)["out"]
    pred = logits.argmax(1)
    # per image, its two most frequent predicted classes (so that the default masks are not empty)
    counts = [torch.bincount(p.flatten(), minlength=logits.shape[1]) for p in pred]
    classes = torch.stack([c.argsort(descending=True, stable=True)[:2] for c in counts])
    return model, layer, x, pred, classes


def seg_reference(model, layer, x, classes, masks) -> np.ndarray:
    """pytorch-grad-cam's Grad-CAM with one ``SemanticSegmentationTarget`` per (image, class)."""
    wrapped = OutOnly(model)
    module = dict(model.named_modules())[layer]
    out = []
    with GradCAM(model=wrapped, target_layers=[module]) as cam:
        for k in range(classes.shape[1]):
            targets = [
                SemanticSegmentationTarget(int(classes[b, k]), masks[b, k].numpy()) for b in range(len(x))
            ]
            out.append(cam(input_tensor=x, targets=targets))
    return np.stack(out, 1)


def test_segmentation_default_mask_matches_semantic_segmentation_target(segmenter, postprocess, max_diff):
    model, layer, x, pred, classes = segmenter
    masks = (pred[:, None] == classes[:, :, None, None]).float()  # where the class wins the argmax
    expected = seg_reference(model, layer, x, classes, masks)
    with CAMExtractor(model, "gradcam", layer) as ext:
        maps = ext(x, classes)
    got = postprocess(maps.flatten(0, 1), x.shape[-2:]).reshape(expected.shape)
    assert got.max() > 0.5
    assert max_diff(got, expected) <= TOL


def test_segmentation_given_masks(segmenter, postprocess, max_diff):
    model, layer, x, _, classes = segmenter
    b, _, h, w = x.shape
    box = torch.zeros(b, h, w)
    box[:, h // 8 : h // 2, w // 4 : 3 * w // 4] = 1.0
    expected = seg_reference(model, layer, x, classes, box[:, None].expand(b, 2, h, w))
    ext = CAMExtractor(model, "gradcam", layer)
    per_image = ext(x, classes, mask=box)
    per_class = ext(x, classes, mask=box[:, None].expand(b, 2, h, w))
    assert torch.equal(per_image, per_class)
    got = postprocess(per_image.flatten(0, 1), x.shape[-2:]).reshape(expected.shape)
    assert max_diff(got, expected) <= TOL
    with pytest.raises(ValueError, match="mask must be"):
        ext(x, classes, mask=box[:, : h // 2])


def vit_tokens_to_grid(tokens: torch.Tensor, height: int = 4, width: int = 4) -> torch.Tensor:
    """(B, 1 + h w, D) -> (B, D, h, w), dropping the class token (pytorch-grad-cam's ViT example)."""
    return tokens[:, 1:, :].reshape(tokens.size(0), height, width, tokens.size(2)).permute(0, 3, 1, 2)


@pytest.mark.parametrize(
    "method, peer",
    [
        ("gradcam", GradCAM),
        ("hirescam", HiResCAM),
        ("layercam", LayerCAM),
        pytest.param("scorecam", ScoreCAM, marks=pytest.mark.slow),  # 192 channels: 384 passes
    ],
)
def test_vit_reshape_transform_matches_pytorch_grad_cam(postprocess, max_diff, method, peer):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=6).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[0, 3], [5, 1]])
    out = []
    with peer(
        model=model, target_layers=[model.blocks[-1].norm1], reshape_transform=vit_tokens_to_grid
    ) as cam:
        for k in range(2):
            out.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, k]]))
    expected = np.stack(out, 1)
    with CAMExtractor(model, method, "blocks.11.norm1", reshape_transform=vit_tokens_to_grid) as ext:
        maps = ext(x, classes)
    assert maps.shape == (2, 2, 4, 4)
    got = postprocess(maps.flatten(0, 1), x.shape[-2:]).reshape(expected.shape)
    assert got.max() > 0.5
    assert max_diff(got, expected) <= TOL
