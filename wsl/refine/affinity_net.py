"""The affinity network: a head on the frozen multi-level features of a trained classifier.

IRN (Ahn et al., CVPR 2019, Sec. 3.2 and ``net/resnet50_irn.py``) reads the five stages of its ResNet-50
(detached: the backbone is not trained), passes each through a 1x1 convolution to 32 channels, group
normalisation and ReLU, brings them to the stride-4 grid and predicts a class-boundary map with one more
1x1 convolution. Here the levels are found on any classifier of :mod:`wsl.models.classifier`:

- a torchvision ResNet: the stem (after max pooling, stride 4) and ``layer1`` .. ``layer4``;
- a network with a ``features`` ``nn.Sequential`` (the toy ``SmallCNN``, VGG-16): the last activation at
  each resolution (every module followed by a max pooling, and the last one); for ``SmallCNN`` that is
  strides 2, 4 and 8.

``kind="boundary"`` (IRN) outputs one boundary logit per cell and pair affinities
``1 - max boundary on the path`` (:func:`~wsl.refine.pairs.boundary_affinity`); ``kind="embedding"``
(PSA, Ahn & Kwak, CVPR 2018) outputs ``embed_dim`` features and affinities ``exp(-mean |f_i - f_j|)``
(:func:`~wsl.refine.pairs.feature_affinity`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wsl.refine.pairs import boundary_affinity, feature_affinity

__all__ = ["KINDS", "STRIDE", "AffinityNet", "backbone_levels", "grid_size"]

KINDS = ("boundary", "embedding")
STRIDE = 4  # the affinity grid: one cell per 4 x 4 pixels (IRN)


def grid_size(size_hw: tuple[int, int]) -> tuple[int, int]:
    """The grid of an ``(H, W)`` image: ``(ceil(H / 4), ceil(W / 4))`` (IRN's ``feat_size``)."""
    return tuple(math.ceil(int(s) / STRIDE) for s in size_hw)


def backbone_levels(classifier: nn.Module) -> list[nn.Module]:
    """The classifier cut into consecutive pieces whose outputs are the multi-level features.

    Raises:
        ValueError: a classifier of another shape (neither a torchvision ResNet nor ``features``).
    """
    if all(hasattr(classifier, n) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer4")):
        c = classifier
        stem = nn.Sequential(c.conv1, c.bn1, c.relu, c.maxpool)
        return [stem, c.layer1, c.layer2, c.layer3, c.layer4]
    features = getattr(classifier, "features", None)
    if isinstance(features, nn.Sequential):
        mods = list(features.children())
        ends = [i for i in range(len(mods) - 1) if isinstance(mods[i + 1], nn.MaxPool2d | nn.AvgPool2d)]
        ends = [*ends, len(mods) - 1]
        starts = [0] + [e + 1 for e in ends[:-1]]
        return [nn.Sequential(*mods[s : e + 1]) for s, e in zip(starts, ends)]
    raise ValueError(
        f"cannot find multi-level features in {type(classifier).__name__}: expected a torchvision ResNet "
        "or a `features` nn.Sequential"
    )


class AffinityNet(nn.Module):
    """Frozen classifier levels + a trainable head on the stride-4 grid.

    Args:
        classifier: the trained classifier (its weights are kept frozen, in eval mode).
        kind: ``"boundary"`` (IRN) or ``"embedding"`` (PSA).
        width: channels of each level after its 1x1 convolution (IRN: 32).
        embed_dim: output channels of the embedding head.
    """

    def __init__(self, classifier: nn.Module, kind: str = "boundary", width: int = 32, embed_dim: int = 32):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.backbone = nn.ModuleList(backbone_levels(classifier))
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            channels, x = [], torch.zeros(1, 3, 64, 64)
            was = self.backbone.training
            self.backbone.eval()
            for level in self.backbone:
                x = level(x)
                channels.append(x.shape[1])
            self.backbone.train(was)
        groups = 4 if width % 4 == 0 else 1
        self.levels = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, width, 1, bias=False), nn.GroupNorm(groups, width), nn.ReLU(inplace=True)
            )
            for c in channels
        )
        self.out = nn.Conv2d(width * len(channels), 1 if kind == "boundary" else embed_dim, 1, bias=True)
        self.pad_to = 32  # inputs are padded so that every level's stride divides them

    def train(self, mode: bool = True) -> AffinityNet:
        super().train(mode)
        self.backbone.eval()  # frozen, batch statistics included (IRN)
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.levels.parameters(), *self.out.parameters()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, O, ceil(H/4), ceil(W/4))`` raw head outputs
        (O = 1 boundary logit, or ``embed_dim`` features)."""
        h, w = images.shape[-2:]
        ph, pw = (math.ceil(s / self.pad_to) * self.pad_to for s in (h, w))
        x = F.pad(images, (0, pw - w, 0, ph - h))  # zero after normalisation, as IRN pads
        grid = (ph // STRIDE, pw // STRIDE)
        parts = []
        with torch.no_grad():
            feats = []
            for level in self.backbone:
                x = level(x)
                feats.append(x)
        for feat, head in zip(feats, self.levels):
            y = head(feat.detach())
            if y.shape[-2:] != grid:
                y = F.interpolate(y, size=grid, mode="bilinear", align_corners=False)
            parts.append(y)
        gh, gw = grid_size((h, w))
        return self.out(torch.cat(parts, 1))[..., :gh, :gw]

    def affinity(self, head_out: torch.Tensor, radius: int) -> torch.Tensor:
        """Pair affinities ``(B, D, H, W)`` in [0, 1] from :meth:`forward`'s output."""
        if self.kind == "boundary":
            return boundary_affinity(torch.sigmoid(head_out[:, 0]), radius)
        return feature_affinity(head_out, radius)
