"""Dense CRF: follows a colour edge on a non-square image; the usual mistakes visibly do not."""

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import scipy.ndimage
import torch

from wsl.segmentation.crf import CRFPool, check_image, crf_map, dense_crf, label_crf

H, W, EDGE, SOFT_EDGE = (
    48,
    80,
    40,
    48,
)  # non-square; the probabilities put their edge 8 px right of the colours


def scene():
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :EDGE] = (200, 60, 40)
    image[:, EDGE:] = (40, 80, 210)
    step = np.zeros((H, W))
    step[:, SOFT_EDGE:] = 1.0
    p1 = scipy.ndimage.gaussian_filter1d(step, sigma=8, axis=1, mode="nearest")  # blurred, misplaced
    probs = np.stack([1 - p1, p1]).clip(1e-5, 1).astype(np.float32)
    truth = np.broadcast_to(np.arange(W) >= EDGE, (H, W))
    return image, probs, truth


def accuracy(q, truth):
    return float((np.asarray(q).argmax(axis=0) == truth).mean())


def raw_crf(rgbim, unary, w, h):
    """SEC's CRF through pydensecrf directly, to run the wrong variants."""
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(2, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=rgbim, compat=10)
    return np.array(crf.inference(10)).reshape(2, H, W)


def test_dense_crf_follows_the_colour_edge():
    image, probs, truth = scene()
    assert accuracy(probs, truth) < 0.91  # the probabilities alone miss the edge
    q = dense_crf(image, probs, scale=1.0)
    assert q.shape == (2, H, W) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-5)
    assert accuracy(q, truth) > 0.99
    # the correct call through pydensecrf agrees, so the wrong variants below are a fair comparison
    np.testing.assert_allclose(raw_crf(image, -np.log(probs), W, H), q, atol=1e-5)


def test_wrong_variants_do_not_follow_the_edge():
    image, probs, truth = scene()
    unary = -np.log(probs)
    # a normalised float image cast to uint8: ToTensor-style [0, 1], and mean/std normalised then clipped
    as_01 = np.ascontiguousarray((image / 255.0).astype(np.uint8))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    normalised = np.ascontiguousarray(np.clip((image / 255.0 - mean) / std, 0, 255).astype(np.uint8))
    assert accuracy(raw_crf(as_01, unary, W, H), truth) < 0.8
    assert accuracy(raw_crf(normalised, unary, W, H), truth) < 0.8
    # W and H swapped: with the true image pydensecrf refuses; with the image transposed to fit, it is wrong
    with pytest.raises(ValueError):
        raw_crf(image, unary, H, W)
    transposed = np.ascontiguousarray(image.transpose(1, 0, 2))
    assert accuracy(raw_crf(transposed, unary, H, W), truth) < 0.8
    # the unary's sign flipped
    assert accuracy(raw_crf(image, -unary, W, H), truth) < 0.5


def test_validation_rejects_wrong_inputs():
    image, probs, _ = scene()
    with pytest.raises(TypeError, match="uint8"):
        dense_crf(image.astype(np.float32) / 255.0, probs)
    with pytest.raises(TypeError):
        dense_crf(torch.from_numpy(image), probs)
    with pytest.raises(ValueError, match="H, W, 3"):
        dense_crf(image[..., 0], probs)
    with pytest.raises(ValueError, match="H, W, 3"):
        dense_crf(np.concatenate([image, image[..., :1]], axis=2), probs)
    with pytest.raises(ValueError, match="match"):
        dense_crf(image, np.ascontiguousarray(probs.transpose(0, 2, 1)))  # (C, W, H)
    bad = probs.copy()
    bad[0, 0, 0] = 0.0
    with pytest.raises(ValueError, match="positive"):
        dense_crf(image, bad)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        dense_crf(image, bad)
    with pytest.raises(ValueError):
        dense_crf(image, probs, scale=0.0)


def test_non_contiguous_image_is_copied_and_input_untouched():
    image, probs, _ = scene()
    flipped = image[:, ::-1]  # a view with negative strides
    assert not flipped.flags.c_contiguous
    before = flipped.copy()
    q = dense_crf(flipped, probs[:, :, ::-1])
    np.testing.assert_allclose(q, dense_crf(np.ascontiguousarray(flipped), probs[:, :, ::-1].copy()))
    np.testing.assert_array_equal(flipped, before)
    assert check_image(flipped).flags.c_contiguous


def test_label_crf_snaps_labels_to_the_colour_edge():
    image, _, truth = scene()
    labels = np.broadcast_to(np.arange(W) >= SOFT_EDGE, (H, W)).astype(np.int64)
    out = label_crf(image, labels, 2)
    assert out.shape == (H, W) and out.dtype == np.int64
    assert (out == truth).mean() > 0.99
    np.testing.assert_array_equal(label_crf(image, np.zeros((H, W), np.int64), 1), 0)
    with pytest.raises(ValueError):
        label_crf(image, labels + 1, 2)
    with pytest.raises(ValueError):
        label_crf(image, labels.T, 2)


def test_crf_map_inline_matches_single_calls():
    image, probs, _ = scene()
    images = [image, image[:, ::-1]]
    probs_list = [probs, probs[:, :, ::-1].copy()]
    expected = [dense_crf(i, p, scale=2.0) for i, p in zip(images, probs_list)]
    for processes in (0, 1):
        got = crf_map(images, probs_list, scale=2.0, processes=processes)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


def _double(x: int) -> int:
    return 2 * x


def test_crf_pool_with_spawned_workers():
    image, probs, _ = scene()
    batch_images = np.stack([image] * 3)  # (B, H, W, 3)
    batch_probs = np.stack([probs] * 3)  # (B, C, H, W)
    expected = dense_crf(image, probs, scale=1.5)
    with CRFPool(processes=2) as pool:
        got = pool.dense(batch_images, batch_probs, scale=1.5)
        assert list(pool.imap(_double, [(1,), (2,), (3,)])) == [2, 4, 6]
        with pytest.raises(TypeError, match="uint8"):
            pool.dense([image.astype(np.float32)], [probs])
    assert len(got) == 3
    for g in got:
        np.testing.assert_array_equal(g, expected)
