"""normalize_maps, upsample_maps, multiscale_maps (against a hand loop) and the drawing helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsl.cam import (
    CAMExtractor,
    colorize,
    draw_boxes,
    grid,
    multiscale_maps,
    normalize_maps,
    overlay,
    upsample_maps,
)


def test_normalize_max_is_irn_and_keeps_zero_maps():
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    before = maps.clone()
    out = normalize_maps(maps)
    assert torch.allclose(out[0], maps[0] / (4.0 + 1e-5))
    assert torch.equal(out[1], torch.zeros(2, 2))
    assert torch.equal(maps, before)  # input untouched


def test_normalize_minmax_constant_maps_are_zero_never_nan():
    maps = torch.tensor([[[[-1.0, 1.0], [0.0, 3.0]], [[5.0, 5.0], [5.0, 5.0]]]])
    out = normalize_maps(maps, mode="minmax")
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[0, 1], torch.zeros(2, 2))
    assert torch.isfinite(normalize_maps(torch.zeros(2, 0, 3, 3), mode="minmax")).all()
    with pytest.raises(ValueError, match="mode"):
        normalize_maps(maps, mode="sum")


def test_normalize_and_upsample_accept_ragged_lists():
    maps = [torch.rand(2, 3, 3), torch.rand(0, 3, 3)]
    normed = normalize_maps(maps)
    assert [m.shape for m in normed] == [(2, 3, 3), (0, 3, 3)]
    up = upsample_maps(maps, (6, 9))
    assert [m.shape for m in up] == [(2, 6, 9), (0, 6, 9)]


def test_upsample_is_bilinear_like_cv2_when_enlarging():
    maps = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    up = upsample_maps(maps, (12, 15))
    assert up.shape == (2, 3, 12, 15)
    expected = cv2.resize(maps[1, 2].numpy(), (15, 12), interpolation=cv2.INTER_LINEAR)
    assert np.abs(up[1, 2].numpy() - expected).max() < 1e-5
    assert torch.equal(upsample_maps(maps, (4, 5)), maps)


@pytest.fixture(scope="module")
def extractor(build_model):
    return CAMExtractor(build_model("tiny"), "gradcam", "features")


def hand_loop(extractor, images, classes, scales, out_size):
    """One image, one scale, one flip at a time."""
    out = []
    for i in range(len(images)):
        total = 0
        for s in scales:
            size = (round(images.shape[2] * s), round(images.shape[3] * s))
            x = F.interpolate(images[i : i + 1], size, mode="bilinear", align_corners=False)
            for flip in (False, True):
                maps = extractor(x.flip(-1) if flip else x, [classes[i]])[0]
                maps = F.interpolate(maps[None], out_size, mode="bilinear", align_corners=False)[0]
                total = total + (maps.flip(-1) if flip else maps)
        out.append(total)
    return out


def test_multiscale_maps_match_a_hand_loop(extractor):
    images = torch.randn(2, 3, 30, 34, generator=torch.Generator().manual_seed(0))
    scales = (1.0, 0.5, 1.5)
    got = multiscale_maps(extractor, images, torch.tensor([[0, 3], [5, 1]]), scales=scales, out_size=(15, 17))
    expected = hand_loop(extractor, images, [[0, 3], [5, 1]], scales, (15, 17))
    assert got.shape == (2, 2, 15, 17)
    assert torch.allclose(got, torch.stack(expected), atol=1e-5 * float(got.abs().max()))


def test_multiscale_maps_ragged_and_defaults(extractor):
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    got = multiscale_maps(extractor, images, [[2], [0, 4, 1]], scales=(1.0, 2.0))
    expected = hand_loop(extractor, images, [[2], [0, 4, 1]], (1.0, 2.0), (24, 24))
    assert [g.shape for g in got] == [(1, 24, 24), (3, 24, 24)]
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-5 * float(e.abs().max()))
    single = multiscale_maps(extractor, images, flip=False)  # all classes, one scale, no flip
    assert torch.allclose(single, F.interpolate(extractor(images), (24, 24), mode="bilinear"))
    with pytest.raises(ValueError, match="scales"):
        multiscale_maps(extractor, images, scales=())


def test_colorize_and_overlay():
    m = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    rgb = colorize(m)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[-1, -1, 0] > rgb[-1, -1, 2]  # jet: blue low, red high
    with pytest.raises(ValueError, match="colormap"):
        colorize(m, cmap="nope")
    image = np.full((8, 10, 3), 100, np.uint8)
    out = overlay(image, torch.from_numpy(m), alpha=0.25)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    assert (image == 100).all()
    heat = colorize(cv2.resize(m, (10, 8), interpolation=cv2.INTER_LINEAR)).astype(np.float32)
    assert np.abs(out.astype(np.float32) - (0.75 * 100 + 0.25 * heat)).max() <= 1.0
    assert np.array_equal(overlay(image, np.zeros((8, 10)), alpha=0.0), image)


def test_draw_boxes_inclusive_and_copy():
    image = np.zeros((24, 24, 3), np.uint8)
    out = draw_boxes(image, np.array([[2, 14, 10, 20]]), color=(0, 255, 0), thickness=1)
    assert (image == 0).all()
    assert tuple(out[14, 2]) == (0, 255, 0) and tuple(out[20, 10]) == (0, 255, 0)  # both corners drawn
    assert tuple(out[21, 11]) == (0, 0, 0) and tuple(out[17, 6]) == (0, 0, 0)  # outside and inside
    labelled = draw_boxes(image, np.array([[2, 14, 10, 20]]), color=(0, 255, 0), thickness=1, labels=["cat"])
    assert labelled[:14].any() and np.array_equal(labelled[14:], out[14:])  # the label sits above the box
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(image, np.zeros((2, 4)), labels=["a"])


def test_grid_panel():
    tiles = [np.full((10, 12, 3), 50, np.uint8), np.zeros((6, 6), np.uint8), np.full((8, 8, 3), 9, np.uint8)]
    panel = grid(tiles, titles=["a", "b", "c"], ncols=2)
    assert panel.dtype == np.uint8 and panel.ndim == 3
    assert panel.shape == (4 + 2 * (10 + 16 + 4), 4 + 2 * (12 + 4), 3)
    assert grid(tiles, ncols=5).shape == (4 + 10 + 4, 4 + 3 * (12 + 4), 3)
    with pytest.raises(ValueError, match="titles"):
        grid(tiles, titles=["a"])
