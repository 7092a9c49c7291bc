"""Stored maps (``cams/<cam>/<split>/<id>.npz``, written by :func:`wsl.io.save_cams`) at image resolution."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from wsl import io
from wsl.data.transforms import fit_side


def upsample_stored(maps: np.ndarray, size_hw: tuple[int, int], renormalize: bool = True) -> np.ndarray:
    """(K, h, w) stored maps -> (K, H, W) float32 at image resolution, bilinear (align_corners=False).

    With ``renormalize`` each map is divided by its maximum again after upsampling (IRN normalises at
    image resolution; interpolation can land slightly below the stored maximum of 1). Zero maps stay zero.
    """
    if maps.shape[0] == 0:
        return np.zeros((0, *size_hw), np.float32)
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    full = F.interpolate(t, size=tuple(size_hw), mode="bilinear", align_corners=False)[0]
    if renormalize:
        peak = full.flatten(1).amax(1).clamp_min(0).view(-1, 1, 1)
        full = torch.where(peak > 0, full.clamp_min(0) / peak.clamp_min(1e-12), torch.zeros_like(full))
    return full.numpy()


def load_full(
    path: str | os.PathLike, max_side: int | None = None, num_classes: int | None = None
) -> dict[str, np.ndarray]:
    """A CAM file (:func:`wsl.io.load_cams`, checked) with its maps upsampled to the image size (key
    ``full``, (K, H, W) float32), or, for an image longer than ``max_side``, to that image scaled down
    to ``max_side`` (:func:`wsl.data.transforms.fit_side`; ``image_size`` stays the original (H, W)), so
    that a huge photo never needs K full-resolution float maps. Raises :class:`wsl.errors.BadItem`."""
    rec = io.load_cams(path, num_classes)
    rec["full"] = upsample_stored(rec["maps"], fit_side(tuple(int(v) for v in rec["image_size"]), max_side))
    return rec
