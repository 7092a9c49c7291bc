"""Data of the affinity stages: class maps of the labelled classes, and the affinity training set.

The training set follows IRN's ``VOC12AffinityDataset`` (Ahn et al., CVPR 2019): random rescale, random
horizontal flip, random crop (image padded with 0 after normalisation, labels with 255), the crop's
confident-region labels brought to the stride-4 grid by nearest neighbour, and the inter-pixel labels of
:func:`wsl.refine.pairs.pair_labels`. The randomness of sample ``(iteration, index)`` comes from a
generator seeded by ``(seed, iteration, index)``, so a resumed run draws exactly what an uninterrupted one
would, whatever the DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from wsl import io
from wsl.cam import upsample_stored
from wsl.data.transforms import to_tensor
from wsl.refine.affinity_net import STRIDE
from wsl.refine.pairs import IGNORE, pair_labels

__all__ = ["AffinityTrainSet", "collate", "labelled_maps"]


def labelled_maps(rec: dict[str, np.ndarray], present: np.ndarray, size_hw: tuple[int, int]):
    """The maps of a CAM file (:func:`wsl.io.load_cams`) for the image's labelled classes, resized.

    Args:
        rec: the CAM record (``classes`` 0-based, ``maps`` ``(K, h, w)``).
        present: 0-based indices of the image's labelled classes.
        size_hw: the size to bring the maps to (bilinear, each renormalised by its maximum).

    Returns:
        ``(maps (K', H, W) float32, labels (K',) int64 = class index + 1)``.

    Raises:
        ValueError: the file has no map for a labelled class.
    """
    keep = np.isin(rec["classes"], present)
    missing = sorted(set(np.asarray(present).tolist()) - set(rec["classes"].tolist()))
    if missing:
        raise ValueError(f"no map for labelled classes {missing}")
    return upsample_stored(rec["maps"][keep], size_hw), rec["classes"][keep].astype(np.int64) + 1


class AffinityTrainSet(torch.utils.data.Dataset):
    """Samples ``{"x": (3, S, S), "pairs": (3, D, S/4, S/4) uint8}`` for the affinity loss.

    Items are ``(iteration, index)`` pairs (from the batch sampler); an unreadable image or label map
    gives None (left out of the batch by :func:`collate`).

    Args:
        ds: the dataset (``ids``, ``load_image``).
        label_dir: folder of the confident-region PNGs ``<id>.png`` (0 bg, class + 1, 255 unsure).
        crop: crop side S in pixels (a multiple of 4).
        scales: (low, high) of the random rescale (IRN: 0.5, 1.5).
        radius: pair radius on the grid (IRN: 10).
    """

    def __init__(self, ds, label_dir: Path, crop: int, scales: Sequence[float], flip: bool, radius: int,
                 mean: Sequence[float], std: Sequence[float], seed: int) -> None:  # fmt: skip
        if crop % STRIDE:
            raise ValueError(f"crop size must be a multiple of {STRIDE}, got {crop}")
        self.ds, self.label_dir, self.crop, self.scales = ds, Path(label_dir), crop, tuple(scales)
        self.flip, self.radius, self.mean, self.std, self.seed = flip, radius, mean, std, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any] | None:
        iteration, i = item
        try:
            image = self.ds.load_image(i)
            labels = io.read_label_png(self.label_dir / f"{self.ds.ids[i]}.png")
        except (OSError, ValueError):
            return None
        if labels.shape != image.shape[:2]:
            return None
        rng = np.random.default_rng([self.seed, iteration, i])
        s = rng.uniform(*self.scales)
        h, w = (max(1, round(v * s)) for v in image.shape[:2])
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)  # IRN rescales with order 3
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        if self.flip and rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        x = to_tensor(np.ascontiguousarray(image), self.mean, self.std)
        c = self.crop
        out_x = torch.zeros(3, c, c)
        out_l = np.full((c, c), IGNORE, np.uint8)
        # IRN's random_crop: a random window of the image and a random place for it in the crop
        ch, cw = min(c, h), min(c, w)
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        py, px = rng.integers(0, c - ch + 1), rng.integers(0, c - cw + 1)
        out_x[:, py : py + ch, px : px + cw] = x[:, y0 : y0 + ch, x0 : x0 + cw]
        out_l[py : py + ch, px : px + cw] = labels[y0 : y0 + ch, x0 : x0 + cw]
        g = c // STRIDE
        grid = cv2.resize(out_l, (g, g), interpolation=cv2.INTER_NEAREST)
        pairs = torch.from_numpy(pair_labels(grid, self.radius).stack().astype(np.uint8))
        return {"x": out_x, "pairs": pairs}


def collate(items: list[dict[str, Any] | None]) -> dict[str, torch.Tensor] | None:
    """Stack the readable samples (None when none is)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    return {"x": torch.stack([it["x"] for it in items]), "pairs": torch.stack([it["pairs"] for it in items])}
