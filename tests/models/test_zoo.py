"""model=timm / model=torchvision builders (wsl.models.zoo), cam_layer and the reshape helpers
(wsl.cam.reshape), and pretrained weights from a local file (wsl.models.weights)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from wsl.cam import CAMExtractor
from wsl.cam.reshape import map_to_tokens, nhwc_to_nchw, swin_reshape, tokens_to_map, vit_reshape
from wsl.errors import UserError
from wsl.io import load_state_dict as read_weights
from wsl.models.zoo import build_timm, build_torchvision

CLASSES = torch.tensor([[0, 2], [1, 3]])


def tiny_vit(**kw) -> nn.Module:
    """timm's VisionTransformer with a class token, 2 blocks and dynamic image size (fast to build)."""
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=4,
        dynamic_img_size=True,
        **kw,
    ).eval()


def test_tokens_fold_row_major_and_back():
    grid = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (B, D, h, w)
    prefix = torch.full((2, 1, 3), -1.0)
    tokens = map_to_tokens(grid, prefix)
    assert tokens.shape == (2, 21, 3)
    # token 1 + i*w + j is patch (i, j): what a patch embedding's flatten(2).transpose(1, 2) gives
    assert torch.equal(tokens[:, 1 + 2 * 5 + 3], grid[:, :, 2, 3])
    assert torch.equal(tokens_to_map(tokens, 1, (4, 5)), grid)
    assert torch.equal(vit_reshape(1, (4, 5))(tokens), grid)
    x = torch.randn(2, 4, 5, 3)
    assert torch.equal(swin_reshape(x), x.permute(0, 3, 1, 2)) and torch.equal(
        nhwc_to_nchw(x)[:, :, 1, 2], x[:, 1, 2]
    )
    with pytest.raises(ValueError, match="grid"):
        tokens_to_map(torch.zeros(1, 1 + 7, 3))  # 7 patches: not a square


def test_vit_cam_layer_equals_pytorch_grad_cam_with_its_reshape_transform():
    """cam_layer (no reshape code) == wsl with an explicit reshape_transform == pytorch-grad-cam's GradCAM on
    blocks[-1].norm1 with the class-token reshape, on a non-square image (4 x 6 patches)."""
    from wsl.cam.reshape import attach_cam_layer

    model = tiny_vit()
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    plain = model(x)
    attach_cam_layer(model, "blocks.1.norm1", prefix_tokens=1, patch_size=(8, 8))
    assert torch.equal(model(x), plain)  # nobody listens: the forward is untouched
    with CAMExtractor(model, "gradcam", "cam_layer") as ext:
        tap = ext(x, CLASSES)
    with CAMExtractor(model, "gradcam", "blocks.1.norm1", reshape_transform=vit_reshape(1, (4, 6))) as ext:
        explicit = ext(x, CLASSES)
    assert tap.shape == (2, 2, 4, 6)
    torch.testing.assert_close(tap, explicit, rtol=1e-5, atol=1e-7)
    assert tap.amax() > 0
    peer = GradCAM(model, [model.blocks[1].norm1], reshape_transform=vit_reshape(1, (4, 6)))
    for k in range(2):
        ref = peer(x, [ClassifierOutputTarget(int(c)) for c in CLASSES[:, k]])  # (B, H, W) in [0, 1]
        ours = scale_cam_image(scale_cam_image(tap[:, k].numpy(), (48, 32)))  # its post-processing
        assert np.abs(ours - ref).max() < 1e-4
    # the relay also carries a layer ablation and the observe path (eigencam) through the tap
    for method in ("ablationcam", "eigencam", "scorecam"):
        with CAMExtractor(model, method, "cam_layer", batch_size=8) as ext:
            assert ext(x, CLASSES).shape == (2, 2, 4, 6)


@pytest.mark.parametrize(
    "arch,source,hw",
    [
        ("convnext_atto", "stages.3", (2, 2)),
        ("vit_tiny_patch16_224", "blocks.11.norm1", (4, 4)),
        ("resnet18", "layer4", (2, 2)),
    ],
)
def test_timm_builder_new_head_default_layer_any_size(arch, source, hw):
    model = build_timm(arch, num_classes=3).eval()
    assert model.cam_layer.source == source
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 3)
    with CAMExtractor(model, "gradcam", "cam_layer") as ext:
        maps = ext(x, [[0, 2]])[0]
    assert maps.shape == (2, *hw)


def test_distilled_deit_drops_both_prefix_tokens():
    model = build_timm("deit_tiny_distilled_patch16_224", num_classes=3).eval()
    assert (model.cam_layer.layout, model.cam_layer.prefix_tokens) == ("tokens", 2)
    with CAMExtractor(model, "gradcam", "cam_layer") as ext:
        assert ext(torch.randn(1, 3, 48, 64), [[1]])[0].shape == (1, 3, 4)


@pytest.mark.slow
def test_swin_nhwc_is_permuted():
    model = build_timm("swin_tiny_patch4_window7_224", num_classes=3).eval()
    assert (model.cam_layer.source, model.cam_layer.layout) == ("norm", "nhwc")
    x = torch.randn(1, 3, 224, 224)
    with CAMExtractor(model, "gradcam", "cam_layer") as ext:
        tap = ext(x, [[0, 1]])[0]
    with CAMExtractor(model, "gradcam", "norm", reshape_transform=swin_reshape) as ext:
        explicit = ext(x, [[0, 1]])[0]
    assert tap.shape == (2, 7, 7)
    torch.testing.assert_close(tap, explicit)


@pytest.mark.parametrize(
    "arch",
    [
        "mobilenet_v3_small",
        "squeezenet1_1",
        pytest.param("efficientnet_b0", marks=pytest.mark.slow),
        pytest.param("regnet_y_400mf", marks=pytest.mark.slow),
    ],
)
def test_torchvision_builder(arch):
    model = build_torchvision(arch, num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 3)
    with CAMExtractor(model, "gradcam", "cam_layer") as ext:
        assert ext(x, [[0]])[0].shape[0] == 1
    with CAMExtractor(model, "guided_backprop") as ext:  # Hardswish / SiLU / ReLU: the guided rule applies
        assert ext(x, [[0]])[0].shape == (1, 64, 64)


def test_unknown_names_are_one_line_with_close_names():
    with pytest.raises(UserError, match="unknown timm model 'convnext_attoo'.*close names: .*convnext_atto"):
        build_timm("convnext_attoo", 3)
    with pytest.raises(
        UserError, match="unknown torchvision classifier 'mobilenet_v3_smal'.*mobilenet_v3_small"
    ):
        build_torchvision("mobilenet_v3_smal", 3)
    with pytest.raises(UserError, match="model.source_layer: no module named 'stages.9'.*close names"):
        build_timm("convnext_atto", 3, source_layer="stages.9")
    with pytest.raises(UserError, match="use model=timm"):
        build_torchvision("vit_b_16", 3)


def test_offline_pretrained_is_one_line(monkeypatch):
    import timm.models._builder as builder

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    with pytest.raises(UserError, match=r"pretrained weights of convnext_atto .*model.weights=w.pth"):
        build_timm("convnext_atto", 3, pretrained=True)


# ------------------------------------------------------------------------------------------- weights


def test_weights_file_loads_the_backbone_and_drops_the_head(tmp_path, caplog):
    donor = timm.create_model("convnext_atto", num_classes=1000)
    for i, form in enumerate(["plain", "model", "ddp"]):
        state = donor.state_dict()
        state = {
            "plain": state,
            "model": {"model": state},
            "ddp": {f"module.{k}": v for k, v in state.items()},
        }[form]
        path = tmp_path / f"w{i}.pth"
        torch.save(state, path)
        with caplog.at_level(logging.INFO):
            model = build_timm("convnext_atto", 5, weights=str(path))
        assert torch.equal(model.stages[3].blocks[0].conv_dw.weight, donor.stages[3].blocks[0].conv_dw.weight)
        assert model.head.fc.weight.shape == (5, 320)
        assert "head.fc.weight (1000, 320)" in caplog.text


def test_weights_safetensors(tmp_path):
    from safetensors.torch import save_file

    donor = build_torchvision("mobilenet_v3_small", 7)
    save_file(donor.state_dict(), str(tmp_path / "w.safetensors"))
    model = build_torchvision("mobilenet_v3_small", 3, weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(model.features[0][0].weight, donor.features[0][0].weight)


def test_weights_mismatch_names_keys_and_shapes(tmp_path):
    other = timm.create_model("resnet18", num_classes=1000).state_dict()
    torch.save(other, tmp_path / "r18.pth")
    with pytest.raises(
        UserError, match=r"r18.pth does not fit the model.s backbone: missing keys layer1.2.conv1.weight"
    ):
        build_timm("resnet34", 3, weights=str(tmp_path / "r18.pth"))
    wide = {
        k: (torch.zeros(v.shape[0] + 1, *v.shape[1:]) if k == "conv1.weight" else v) for k, v in other.items()
    }
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(
        UserError, match=r"shape mismatch \(file vs model\) conv1.weight \(65, 3, 7, 7\) vs \(64, 3"
    ):
        build_timm("resnet18", 3, weights=str(tmp_path / "wide.pth"))


def test_whole_pickled_model_is_one_clear_line(tmp_path):
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3)), tmp_path / "whole.pt")
    with pytest.raises(UserError, match=r"whole pickled model \(torch.nn.modules.*state_dict\(\)"):
        read_weights(tmp_path / "whole.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        read_weights(tmp_path / "absent.pt")


@pytest.mark.slow
def test_guided_backprop_reaches_timm_gelu_and_silu():
    """ViT (GELU), EfficientNet (SiLU): guided backprop is not the plain gradient. (A ConvNeXt at its
    initialisation is a poor probe: layer scale 1e-6 makes its blocks near-identities.)"""
    for arch in ("vit_tiny_patch16_224", "efficientnet_b0"):
        model = build_timm(arch, 3).eval()
        x = torch.randn(1, 3, 64, 64)
        with CAMExtractor(model, "guided_backprop") as ext:
            guided = ext(x, [[0]])[0]
        xg = x.clone().requires_grad_(True)
        model(xg)[0, 0].backward()
        assert (guided - xg.grad.abs().amax(1)).abs().max() > 1e-3 * guided.abs().max()
