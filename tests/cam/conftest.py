"""Fixtures of the CAM tests: small models by name, pytorch-grad-cam's post-processing, hook checks.

The test modules are imported in importlib mode (see pyproject.toml), so helpers reach them as fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn


def _resnet18(num_classes: int = 6) -> nn.Module:
    """torchvision's ResNet-18 with random weights (GAP + one linear layer)."""
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).eval()


def _vgg_features() -> nn.Sequential:
    """torchvision's VGG-11 convolutions (``features.N`` as in torchvision, in-place ReLUs), its init."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["A"])
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


class _VGG11(nn.Module):
    """torchvision's VGG-11 layout (features, 7x7 adaptive pooling, flatten + MLP with in-place ReLUs and
    dropout) with the classifier narrowed from 4096 to 64 units: building the 4096-unit one takes seconds."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.features = _vgg_features()
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(64, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class _VGGGAP(nn.Module):
    """VGG-11 convolutions without the last max pooling, global average pooling and one linear layer."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.features = _vgg_features()[:-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _grad_cam_postprocess(maps: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's own post-processing of ``(N, h, w)`` non-negative maps: min-max, cv2 bilinear
    resize to ``size`` = (H, W), min-max again (what its ``BaseCAM.forward`` returns)."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0)
    return scale_cam_image(scale_cam_image(maps, (size[1], size[0])))


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def _no_hooks(model: nn.Module) -> bool:
    """True when no module of ``model`` holds a forward, pre-forward or backward hook."""
    return all(
        not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)
        for m in model.modules()
    )


class _TinyCNN(nn.Module):
    """Two conv blocks (16 channels at ``features``, in-place ReLUs), GAP and one linear layer."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class _TinyFCN(nn.Module):
    """A segmentation net returning ``{"out": (B, C, H, W)}`` logits at the input size, as torchvision's."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.backbone = _TinyCNN().features
        self.classifier = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.backbone(x))
        return {
            "out": nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        }


MODELS: dict[str, Callable[[], nn.Module]] = {
    "tiny": _TinyCNN,
    "resnet18": _resnet18,
    "vgg11": _VGG11,
    "vgg11_gap": _VGGGAP,
    "tiny_fcn": _TinyFCN,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread for every CAM test module: the inputs are tiny, and on a busy 2-core machine two
    OpenMP threads made small forward passes 100x slower (2 s instead of 0.02 s for a tiny ViT)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def build_model() -> Callable[[str], nn.Module]:
    """``build_model(name)``: a fresh model with fixed random weights, in eval mode; names in ``MODELS``."""

    def build(name: str) -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return MODELS[name]().eval()

    return build


@pytest.fixture(scope="session")
def postprocess() -> Callable[[np.ndarray | torch.Tensor, tuple[int, int]], np.ndarray]:
    """pytorch-grad-cam's post-processing, see :func:`_grad_cam_postprocess`."""
    return _grad_cam_postprocess


@pytest.fixture(scope="session")
def max_diff() -> Callable[[np.ndarray, np.ndarray], float]:
    return _max_diff


@pytest.fixture(scope="session")
def no_hooks() -> Callable[[nn.Module], bool]:
    return _no_hooks
