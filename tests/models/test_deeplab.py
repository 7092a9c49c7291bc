"""DeepLab networks: output shapes, the LargeFOV layer recipe, SEC's parameter groups, ImageNet loading."""

import types
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from wsl.models import deeplab
from wsl.models.deeplab import (
    DeepLabLargeFOV,
    DeepLabResNet,
    DeepLabSmall,
    load_imagenet_state_dict,
    sec_param_groups,
)


@pytest.fixture(scope="module")
def largefov():
    torch.manual_seed(0)
    return DeepLabLargeFOV(num_classes=21).eval()


def test_largefov_321_to_41(largefov):
    with torch.no_grad():
        assert largefov(torch.zeros(1, 3, 321, 321)).shape == (1, 21, 41, 41)
        assert largefov(torch.zeros(2, 3, 65, 97)).shape == (2, 21, 9, 13)


def test_largefov_layers_follow_sec(largefov):
    f = largefov.features
    for name, stride in [("pool1", 2), ("pool2", 2), ("pool3", 2), ("pool4", 1), ("pool5", 1)]:
        pool = getattr(f, name)
        assert isinstance(pool, nn.MaxPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (
            3,
            stride,
            1,
        )
    assert isinstance(f.pool5a, nn.AvgPool2d) and (f.pool5a.kernel_size, f.pool5a.stride) == (3, 1)
    assert all(getattr(f, f"conv5_{i}").dilation == (2, 2) for i in (1, 2, 3))
    assert f.conv4_3.dilation == (1, 1)
    convs = [m for m in f if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    h = largefov.head
    assert (h.fc6.kernel_size, h.fc6.dilation, h.fc6.out_channels) == ((3, 3), (12, 12), 1024)
    assert (h.fc7.kernel_size, h.fc7.out_channels) == ((1, 1), 1024)
    assert h.drop6.p == 0.5 and h.drop7.p == 0.5
    fc8 = largefov.classifier
    assert fc8.kernel_size == (1, 1) and fc8.out_channels == 21
    assert abs(fc8.weight.std().item() - 0.01) < 0.001 and fc8.bias.abs().max() == 0


def test_resnet_output_stride():
    torch.manual_seed(0)
    net = DeepLabResNet(num_classes=5, depth=50).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 161, 129)).shape == (1, 5, 21, 17)
        net16 = DeepLabResNet(num_classes=5, depth=50, output_stride=16).eval()
        assert net16(torch.zeros(1, 3, 96, 96)).shape == (1, 5, 6, 6)


def test_resnet_frozen_batchnorm_stays_in_eval():
    net = DeepLabResNet(num_classes=3, depth=50, freeze_bn=True).train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)
    names = {g["name"] for g in sec_param_groups(net, 1e-3, 5e-4)}
    assert "norm" not in names  # frozen norm parameters are not trained


def test_small_variant_shapes():
    x = torch.zeros(2, 3, 160, 160)
    assert DeepLabSmall(num_classes=4)(x).shape == (2, 4, 20, 20)
    assert DeepLabSmall(num_classes=4, output_stride=4)(x).shape == (2, 4, 40, 40)


def test_sec_param_groups_multipliers(largefov):
    groups = {g["name"]: g for g in sec_param_groups(largefov, lr=1e-3, weight_decay=5e-4)}
    assert set(groups) == {"weight", "bias", "classifier_weight", "classifier_bias"}
    expected = {
        "weight": (1e-3, 5e-4),
        "bias": (2e-3, 0.0),
        "classifier_weight": (1e-2, 5e-4),
        "classifier_bias": (2e-2, 0.0),
    }
    for name, (lr, wd) in expected.items():
        assert groups[name]["lr"] == pytest.approx(lr) and groups[name]["weight_decay"] == wd
    assert groups["classifier_weight"]["params"] == [largefov.classifier.weight]
    assert groups["classifier_bias"]["params"] == [largefov.classifier.bias]
    seen = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in largefov.parameters())  # each parameter exactly once
    torch.optim.SGD(list(groups.values()), lr=1e-3, momentum=0.9)  # accepted by the optimizer


def test_sec_param_groups_norm_params_without_decay():
    groups = {g["name"]: g for g in sec_param_groups(DeepLabSmall(3), lr=0.1, weight_decay=1e-4)}
    assert groups["norm"]["weight_decay"] == 0.0 and groups["norm"]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        sec_param_groups(nn.Linear(2, 2), 0.1, 0.0)


def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.mark.parametrize(
    "build", [lambda: DeepLabLargeFOV(pretrained=True), lambda: DeepLabResNet(pretrained=True)]
)
def test_pretrained_offline_error_is_one_line(monkeypatch, tmp_path, build):
    offline(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "checkpoints") in message and ".pth" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_load_imagenet_state_dict_reads_the_hub_cache(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"w": torch.arange(3)}, tmp_path / "checkpoints" / "tiny-0123abcd.pth")
    fake = types.SimpleNamespace(url="https://example.org/models/tiny-0123abcd.pth")
    assert torch.equal(load_imagenet_state_dict(fake)["w"], torch.arange(3))


def test_largefov_takes_vgg16_weights(monkeypatch):
    torch.manual_seed(1)
    with torch.device("meta"):
        layout = torchvision.models.vgg16(weights=None).state_dict()
    state = {k: torch.rand(v.shape) for k, v in layout.items()}
    monkeypatch.setattr(deeplab, "load_imagenet_state_dict", lambda weights: state)
    net = DeepLabLargeFOV(num_classes=21, pretrained=True)
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's vgg16.features
    target = [m for m in net.features if isinstance(m, nn.Conv2d)]
    for i, t in zip(conv_indices, target, strict=True):
        assert torch.equal(state[f"features.{i}.weight"], t.weight)
        assert torch.equal(state[f"features.{i}.bias"], t.bias)
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    assert torch.equal(net.head.fc6.weight[5, :, 1, 2], fc6[20, :, 3, 6])
    assert torch.equal(net.head.fc7.weight[7, 9, 0, 0], state["classifier.3.weight"][28, 36])
    assert torch.equal(net.head.fc7.bias, state["classifier.3.bias"][::4])
