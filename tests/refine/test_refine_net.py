"""The affinity head on a classifier's frozen multi-level features; the training set's samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl import io
from wsl.models.classifier import build_classifier
from wsl.refine import AffinityNet, AffinityTrainSet, backbone_levels, grid_size, offsets


def test_levels_of_the_small_cnn_and_of_a_resnet():
    x = torch.zeros(1, 3, 64, 64)
    strides = []
    for level in backbone_levels(build_classifier("small_cnn", 6)):
        x = level(x)
        strides.append(64 // x.shape[-1])
    assert strides == [2, 4, 8]  # the last activation at each resolution
    assert len(backbone_levels(build_classifier("resnet18", 6))) == 5  # stem + layer1..4
    with pytest.raises(ValueError):
        backbone_levels(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kind", ["boundary", "embedding"])
def test_grid_frozen_backbone_and_head_gradients(kind):
    torch.manual_seed(0)
    net = AffinityNet(build_classifier("small_cnn", 6), kind, width=8, embed_dim=4).train()
    assert not net.backbone.training  # IRN keeps the backbone in eval mode
    x = torch.randn(2, 3, 37, 50)
    out = net(x)
    assert out.shape == (2, 1 if kind == "boundary" else 4, *grid_size((37, 50))) and grid_size((37, 50)) == (
        10,
        13,
    )
    aff = net.affinity(out, 3)
    assert aff.shape == (2, len(offsets(3)), 10, 13) and aff.min() >= 0 and aff.max() <= 1
    aff.sum().backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert all(p.grad is not None for p in net.head_parameters())


class _Toy:
    ids = ["a", "b"]

    def __len__(self):
        return 2

    def load_image(self, i):
        return np.full((30, 41, 3), 40 * (i + 1), np.uint8)


def test_train_set_is_deterministic_per_iteration_and_item(tmp_path):
    lab = np.zeros((30, 41), np.uint8)
    lab[5:20, 10:30] = 2
    lab[0:3] = 255
    for name in ("a", "b"):
        io.write_label_png(tmp_path / f"{name}.png", lab)
    ts = AffinityTrainSet(_Toy(), tmp_path, 32, (0.5, 1.5), True, 4, [0.5] * 3, [0.25] * 3, seed=0)
    s = ts[(3, 1)]
    assert s["x"].shape == (3, 32, 32) and s["pairs"].shape == (3, len(offsets(4)), 8, 8)
    again = ts[(3, 1)]
    assert torch.equal(s["x"], again["x"]) and torch.equal(s["pairs"], again["pairs"])
    assert s["pairs"][2].any() and s["pairs"][1].any()  # a class region and background: both kinds of pair
    (tmp_path / "a.png").write_bytes(b"not a png")
    assert ts[(0, 0)] is None
