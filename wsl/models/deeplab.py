"""Segmentation networks for SEC: DeepLab-LargeFOV (VGG-16), a dilated-ResNet DeepLab, a small toy net.

- :class:`DeepLabLargeFOV`: Chen et al., "Semantic image segmentation with deep convolutional nets and
  fully connected CRFs" (ICLR 2015), the network SEC trains (Kolesnikov & Lampert, ECCV 2016): 321x321 in,
  41x41 out (output stride 8).
- :class:`DeepLabResNet`: torchvision ResNet-50/101 with dilated layer3/layer4 (output stride 8 or 16) and
  DeepLab-v2's ASPP classifier (Chen et al., TPAMI 2018: four 3x3 convolutions, rates 6/12/18/24, summed).
- :class:`DeepLabSmall`: a few conv blocks, output stride 8 or 4, for the 160 px toy data on a CPU.

Every model returns logits ``(B, C, h, w)`` and exposes ``classifier`` (its last layer, trained at x10 /
x20 by :func:`sec_param_groups`) and ``output_stride``. ImageNet weights come from torchvision's files in
the torch hub cache (``<torch hub dir>/checkpoints``); inputs must then be normalised as torchvision's
models expect (RGB in [0, 1], ImageNet mean and std), not as the Caffe models (BGR, 0-255).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights, VGG16_Weights, WeightsEnum

from wsl import io

__all__ = ["DeepLabLargeFOV", "DeepLabResNet", "DeepLabSmall", "load_imagenet_state_dict", "sec_param_groups"]


def load_imagenet_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ImageNet ``weights`` (:func:`wsl.io.imagenet_state_dict`)."""
    return io.imagenet_state_dict(weights.url, type(weights).__name__, key="segmodel.pretrained")


def _classifier_conv(in_channels: int, num_classes: int, **kwargs: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, num_classes, **kwargs)
    nn.init.normal_(conv.weight, std=0.01)  # DeepLab / SEC: fc8 ~ N(0, 0.01^2), bias 0
    nn.init.zeros_(conv.bias)
    return conv


class DeepLabLargeFOV(nn.Module):
    """DeepLab-LargeFOV on VGG-16 (Caffe layer names; ``features.conv4_1`` is SEC's saliency layer).

    pool1-3 3x3 stride 2 pad 1, pool4/pool5 3x3 stride 1 pad 1, conv5 dilation 2, pool5a 3x3 average stride
    1 pad 1, fc6 3x3 dilation 12 (1024), fc7 1x1 (1024), ReLU + dropout 0.5 after both, fc8 1x1. Max pooling
    rounds up like Caffe (``ceil_mode``). ``(B, 3, 321, 321) -> (B, num_classes, 41, 41)``.

    With ``pretrained``, the 13 convolutions take torchvision's VGG-16 ImageNet weights and fc6/fc7 are
    decimated from its fully connected layers as DeepLab did (every 3rd tap of the 7x7 fc6 kernel, every 4th
    unit of 4096).
    """

    output_stride = 8

    def __init__(self, num_classes: int = 21, pretrained: bool = False) -> None:
        super().__init__()
        state = load_imagenet_state_dict(VGG16_Weights.IMAGENET1K_V1) if pretrained else None
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        blocks = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]
        in_ch = 3
        for block, convs, out_ch in blocks:
            dilation = 2 if block == 5 else 1
            for i in range(1, convs + 1):
                layers[f"conv{block}_{i}"] = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
                layers[f"relu{block}_{i}"] = nn.ReLU(inplace=True)
                in_ch = out_ch
            stride = 2 if block <= 3 else 1
            layers[f"pool{block}"] = nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=True)
        layers["pool5a"] = nn.AvgPool2d(3, stride=1, padding=1)  # Caffe counts the padding too
        self.features = nn.Sequential(layers)
        self.head = nn.Sequential(
            OrderedDict(
                fc6=nn.Conv2d(512, 1024, 3, padding=12, dilation=12),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(0.5),
                fc7=nn.Conv2d(1024, 1024, 1),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(0.5),
            )
        )
        self.classifier = _classifier_conv(1024, num_classes, kernel_size=1)  # fc8
        if state is not None:
            self._load_vgg16(state)

    def _load_vgg16(self, state: dict[str, torch.Tensor]) -> None:
        with torch.device("meta"):  # the layout of torchvision's VGG-16, without allocating it
            vgg = torchvision.models.vgg16(weights=None)
        source = [f"features.{i}" for i, m in enumerate(vgg.features) if isinstance(m, nn.Conv2d)]
        target = [m for m in self.features if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for src, dst in zip(source, target, strict=True):
                dst.weight.copy_(state[f"{src}.weight"])
                dst.bias.copy_(state[f"{src}.bias"])
            fc6_w, fc6_b = state["classifier.0.weight"], state["classifier.0.bias"]
            fc7_w, fc7_b = state["classifier.3.weight"], state["classifier.3.bias"]
            self.head.fc6.weight.copy_(fc6_w.view(4096, 512, 7, 7)[::4, :, ::3, ::3])
            self.head.fc6.bias.copy_(fc6_b[::4])
            self.head.fc7.weight.copy_(fc7_w[::4, ::4, None, None])
            self.head.fc7.bias.copy_(fc7_b[::4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C, h, w)`` logits, ``h = f(f(f(H)))``, ``f(n) = n // 2 + 1`` (321 -> 41)."""
        return self.classifier(self.head(self.features(x)))


class _ASPPv2(nn.Module):
    """DeepLab-v2 ASPP: parallel 3x3 classifiers at several dilation rates, summed."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _classifier_conv(in_channels, num_classes, kernel_size=3, padding=r, dilation=r) for r in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(dim=0)


class DeepLabResNet(nn.Module):
    """DeepLab-v2 style network on a dilated torchvision ResNet-50 or -101.

    ``output_stride`` 8 dilates layer3 and layer4 (16: layer4 only). With ``freeze_bn`` (default: the same
    as ``pretrained``, as DeepLab-v2 did with small batches) the batch-norm layers keep their ImageNet
    statistics and affine parameters: they stay in eval mode and are excluded from training.
    ``(B, 3, 321, 321) -> (B, C, 41, 41)`` at stride 8.
    """

    def __init__(
        self,
        num_classes: int = 21,
        depth: int = 50,
        pretrained: bool = False,
        output_stride: int = 8,
        freeze_bn: bool | None = None,
        rates: tuple[int, ...] = (6, 12, 18, 24),
    ) -> None:
        super().__init__()
        builders = {50: (torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V1)}
        builders[101] = (torchvision.models.resnet101, ResNet101_Weights.IMAGENET1K_V1)
        if depth not in builders:
            raise ValueError(f"depth must be 50 or 101, got {depth}")
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        build, weights = builders[depth]
        state = load_imagenet_state_dict(weights) if pretrained else None  # fail fast when offline
        resnet = build(weights=None, replace_stride_with_dilation=[False, output_stride == 8, True])
        if state is not None:
            resnet.load_state_dict(state)
        self.output_stride = output_stride
        self.backbone = nn.Sequential(
            OrderedDict(
                (name, getattr(resnet, name))
                for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
            )
        )
        self.classifier = _ASPPv2(2048, num_classes, tuple(rates))
        self.freeze_bn = pretrained if freeze_bn is None else freeze_bn
        if self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.requires_grad_(False)

    def train(self, mode: bool = True) -> DeepLabResNet:
        super().train(mode)
        if self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C, ceil(H / s), ceil(W / s))`` logits, s = ``output_stride``."""
        return self.classifier(self.backbone(x))


class DeepLabSmall(nn.Module):
    """A small from-scratch segmentation net for the toy data (fast on a CPU).

    Conv-BN-ReLU blocks with stride 2 down to ``output_stride`` (8 or 4), one dilated block, a 1x1
    classifier. ``(B, 3, 160, 160) -> (B, C, 20, 20)`` at stride 8.
    """

    def __init__(self, num_classes: int = 21, width: int = 32, output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (4, 8):
            raise ValueError(f"output_stride must be 4 or 8, got {output_stride}")
        self.output_stride = output_stride

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        w = width
        self.features = nn.Sequential(
            block(3, w, stride=2),
            block(w, 2 * w, stride=2),
            block(2 * w, 4 * w, stride=2 if output_stride == 8 else 1),
            block(4 * w, 4 * w, dilation=2),
            nn.Dropout2d(0.1),
        )
        self.classifier = _classifier_conv(4 * w, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C, ceil(H / output_stride), ceil(W / output_stride))`` logits."""
        return self.classifier(self.features(x))


def sec_param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """SGD parameter groups with SEC's Caffe multipliers (from DeepLab's solver definitions).

    Weights: ``lr``, ``weight_decay``; biases: ``2 * lr``, no decay; other 1-D parameters (norm scales):
    ``lr``, no decay; the last layer (``model.classifier``): weights ``10 * lr``, biases ``20 * lr``.
    Frozen parameters are left out. Each group carries ``name`` and ``lr_mult`` (so a step schedule
    that rescales every group's ``lr`` keeps the ratios).

    Args:
        model: a network with a ``classifier`` attribute (unwrapped from DDP first, or with ``.module``).
    """
    net = getattr(model, "module", model)
    if not isinstance(getattr(net, "classifier", None), nn.Module):
        raise ValueError("model must expose its last layer as `classifier`")
    last = {id(p) for p in net.classifier.parameters()}
    spec = {  # name: (lr multiplier, weight decay applies)
        "weight": (1.0, True),
        "bias": (2.0, False),
        "norm": (1.0, False),
        "classifier_weight": (10.0, True),
        "classifier_bias": (20.0, False),
    }
    params: dict[str, list[nn.Parameter]] = {name: [] for name in spec}
    for pname, p in net.named_parameters():
        if not p.requires_grad:
            continue
        is_bias = pname.rsplit(".", 1)[-1] == "bias"
        if id(p) in last:
            params["classifier_bias" if is_bias else "classifier_weight"].append(p)
        else:
            params["bias" if is_bias else ("weight" if p.ndim > 1 else "norm")].append(p)
    return [
        {
            "params": params[name],
            "lr": lr * mult,
            "lr_mult": mult,
            "weight_decay": weight_decay if decay else 0.0,
            "name": name,
        }
        for name, (mult, decay) in spec.items()
        if params[name]
    ]
