"""Multi-label classifiers: a backbone, global average pooling and one linear layer.

That head is what CAM (Zhou et al., CVPR 2016) needs, and with it CAM, Grad-CAM and HiResCAM agree up to
a positive constant per class. The target layer of each architecture is named in its model config.
"""

from __future__ import annotations

import logging

import torch
import torchvision
from torch import nn

from wsl import io
from wsl.models.weights import load_backbone_weights

log = logging.getLogger(__name__)

TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "vgg16")
ARCHS = ("small_cnn", *TORCHVISION_ARCHS)


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A fast classifier for the toy data: six 3x3 conv layers (output stride 8), GAP, linear.

    A strided stem and early pooling keep it cheap on a CPU (about 0.17 GMAC per 160 px image);
    ``features`` ends at stride 8, so a 160 px image gives 20 x 20 maps.
    """

    def __init__(self, num_classes: int, width: int = 24) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv(3, w, stride=2),
            nn.MaxPool2d(2),
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w),
            *_conv(4 * w, 4 * w),
            *_conv(4 * w, 4 * w),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) class scores."""
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class VGGGAP(nn.Module):
    """VGG-16 convolutions without the last max pooling (stride 16), GAP and one linear layer."""

    def __init__(self, vgg: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*list(vgg.features.children())[:-1])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def imagenet_weights(arch: str):
    """torchvision's ImageNet weights enum for ``arch``."""
    return torchvision.models.get_model_weights(arch).DEFAULT


def load_imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of ``arch`` (torch hub cache, downloaded there once; offline: one line)."""
    return io.imagenet_state_dict(imagenet_weights(arch).url, arch)


def build_classifier(
    arch: str, num_classes: int, pretrained: bool = False, weights: str | None = None
) -> nn.Module:
    """A classifier returning (B, num_classes) scores; see the module docstring. ``weights``: a local file
    of pretrained weights (:func:`wsl.models.weights.load_backbone_weights`: head keys that do not fit
    are dropped with a log line, any other mismatch is one line naming the keys)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown classifier {arch!r}; allowed: {', '.join(ARCHS)}")
    if pretrained and weights:
        raise ValueError("model.pretrained=true and model.weights both give weights: choose one")
    if arch == "small_cnn":
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; set model.pretrained=false")
        net = SmallCNN(num_classes)
    else:
        net = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            net.load_state_dict(load_imagenet_state(arch))
            log.info("initialised %s from torchvision's ImageNet weights", arch)
        if arch == "vgg16":
            net = VGGGAP(net, num_classes)
        else:
            net.fc = nn.Linear(net.fc.in_features, num_classes)
    if weights:
        load_backbone_weights(net, io.load_state_dict(weights), str(weights), num_classes)
    return net
