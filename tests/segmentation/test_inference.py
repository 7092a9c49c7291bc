"""Multi-scale + flip inference (wsl.segmentation.inference) against direct loops and SEC's own inference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsl.data.transforms import to_tensor
from wsl.models.deeplab import DeepLabSmall
from wsl.segmentation.inference import input_hw, predict_labels, predict_probs
from wsl.segmentation.sec import predict_probs as sec_predict_probs

MEAN, STD, CPU = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], torch.device("cpu")


def _images(*shapes):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in shapes]


def _net():
    torch.manual_seed(0)
    return DeepLabSmall(5, width=8).eval()


def _direct(model, image, scales, flip):
    """One image, one pass per (scale, flip), written out without batching or grouping."""
    H, W = image.shape[:2]
    total = torch.zeros(5, H, W)
    for s in scales:
        small = cv2.resize(
            image, (max(8, round(W * s)), max(8, round(H * s))), interpolation=cv2.INTER_LINEAR
        )
        x = to_tensor(small, MEAN, STD)[None]
        with torch.no_grad():
            views = [torch.softmax(model(x), 1)]
            if flip:
                views.append(torch.softmax(model(torch.flip(x, [3])), 1).flip(3))
        p = sum(views) / len(views)
        total += F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False)[0]
    return (total / len(scales)).numpy()


def test_multiscale_flip_matches_a_direct_loop_on_images_of_several_sizes():
    model, images = _net(), _images((40, 56), (40, 56), (33, 47))
    got = predict_probs(model, images, [0.75, 1.0, 1.5], True, MEAN, STD, CPU)
    for image, p in zip(images, got):
        assert p.shape == (5, *image.shape[:2]) and p.dtype == np.float32
        np.testing.assert_allclose(p, _direct(model, image, [0.75, 1.0, 1.5], True), atol=1e-5)
        np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)  # an average of softmaxes


def test_square_input_is_secs_inference():
    """size=S resizes to S * scale squares: exactly what stage=labels' SEC inference computes."""
    model, images = _net(), _images((40, 56), (33, 47))
    ours = predict_probs(model, images, [1.0, 0.5], True, MEAN, STD, CPU, size=48)
    theirs = sec_predict_probs(model, images, 48, [1.0, 0.5], True, MEAN, STD, CPU)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_pointwise_net_at_scale_one_is_its_softmax_and_flip_changes_nothing():
    """A 1x1 convolution is flip-equivariant and needs no resizing: the result is softmax(conv(x))."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 1).eval()
    image = _images((9, 13))[0]
    want = torch.softmax(conv(to_tensor(image, MEAN, STD)[None]), 1)[0].detach().numpy()
    for flip in (False, True):
        (got,) = predict_probs(conv, [image], [1.0], flip, MEAN, STD, CPU)
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert (predict_labels(got) == want.argmax(0)).all() and predict_labels(got).dtype == np.uint8


def test_input_sizes():
    assert input_hw((375, 500), 0.5) == (188, 250)
    assert input_hw((375, 500), 0.75, size=321) == (241, 241)
    assert input_hw((10, 10), 0.1) == (8, 8)  # at least 8 pixels a side
    with pytest.raises(ValueError, match="scale"):
        predict_probs(_net(), _images((9, 9)), [], False, MEAN, STD, CPU)
