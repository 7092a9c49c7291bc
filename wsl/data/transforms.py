"""Image transforms on uint8 (H, W, 3) arrays -> normalised float tensors (3, H, W)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch


def to_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W), scaled to [0, 1] then normalised per channel."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 image to (h, w)."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def fit_side(size_hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(h, w) of an (H, W) image scaled down (aspect kept) so that its longer side is at most ``max_side``;
    (H, W) itself when it already fits or ``max_side`` is None (the memory guard, ``dataset.max_side``)."""
    h, w = (int(v) for v in size_hw)
    if max_side is None or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """An (H, W, 3) uint8 image at :func:`fit_side` (area interpolation, no aliasing); itself if it fits."""
    h, w = fit_side(image.shape[:2], max_side)
    if (h, w) == image.shape[:2]:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def upsample_labels(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """An (h, w) uint8 label map brought to (H, W) by nearest neighbour (labels are never blended)."""
    h, w = size_hw
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


class TrainTransform:
    """Classification augmentation: random scale and crop to ``size``, horizontal flip, colour jitter.

    The crop keeps at least ``min_area`` of the image, so that objects are rarely cut away entirely
    (their image-level label would then be wrong). ``__call__(image, rng)`` draws from ``rng`` when given
    (training passes one per (seed, epoch, image), so a resumed run augments exactly as an uninterrupted
    one, whatever the worker processes), else from the transform's own generator.
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        min_area: float = 0.6,
        jitter: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.min_area, self.jitter = min_area, jitter
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        rng = self.rng if rng is None else rng
        h, w = image.shape[:2]
        area = rng.uniform(self.min_area, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch = int(round(min(h, np.sqrt(area * h * w / aspect))))
        cw = int(round(min(w, np.sqrt(area * h * w * aspect))))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        out = resize(image[y0 : y0 + ch, x0 : x0 + cw], (self.size, self.size))
        if rng.random() < 0.5:
            out = out[:, ::-1]
        x = to_tensor(out, self.mean, self.std)
        if self.jitter > 0:
            # brightness and contrast jitter in normalised space (cheap, keeps colour statistics honest)
            b = rng.uniform(-self.jitter, self.jitter)
            c = rng.uniform(1 - self.jitter, 1 + self.jitter)
            x = x * c + b
        return x


class EvalTransform:
    """Resize to ``size`` x ``size`` (or keep the size when ``size`` is None) and normalise."""

    def __init__(self, size: int | None, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.size is not None:
            image = resize(image, (self.size, self.size))
        return to_tensor(image, self.mean, self.std)
