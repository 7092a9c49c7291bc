"""Training data of stage=sec: images resized to the network input, seeds on the output grid, CRF images.

SEC (Kolesnikov & Lampert, ECCV 2016) resizes every image to the input size (321 x 321 for LargeFOV: no
crop, no mirroring). Seeds made at image resolution reach the output grid by the most common label per
cell (:func:`wsl.segmentation.seeds_to_grid`). The constrain loss's CRF runs on the ORIGINAL uint8 image
downscaled to the grid (area interpolation), with kernel widths divided by ``s = image side / grid side``
(SEC: about 500 / 41 = 12).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from wsl import io
from wsl.data.transforms import resize, to_tensor
from wsl.segmentation import seeds_to_grid

log = logging.getLogger(__name__)


class SECTrainSet(Dataset):
    """Samples for SEC: ``x`` (3, S, S) normalised, ``small`` uint8 (h, w, 3) CRF image, ``seeds`` int64
    (h, w) on the grid (255 = no cue), ``label`` float32 (C,) multi-hot, ``scale`` the CRF's s.

    An unreadable image or seed file yields None (the collate drops it; it is logged).
    """

    def __init__(
        self,
        ds,
        indices: Sequence[int],
        seeds_dir: Path,
        input_size: int,
        grid_hw: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        crf_scale: float | None = None,
    ) -> None:
        self.ds, self.indices, self.seeds_dir = ds, list(indices), Path(seeds_dir)
        self.input_size, self.grid_hw, self.crf_scale = input_size, tuple(grid_hw), crf_scale
        self.mean, self.std = list(mean), list(std)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> dict[str, Any] | None:
        i = self.indices[j]
        try:
            image = self.ds.load_image(i)
            seeds = io.read_label_png(self.seeds_dir / f"{self.ds.ids[i]}.png")
        except (OSError, ValueError) as e:
            log.warning("skipping %s in this batch: %s", self.ds.ids[i], e)
            return None
        if seeds.shape != image.shape[:2]:
            log.warning("skipping %s: seeds %s, image %s", self.ds.ids[i], seeds.shape, image.shape[:2])
            return None
        (h, w), (H, W) = self.grid_hw, image.shape[:2]
        # The CRF sees the original uint8 pixels (area-averaged to the grid), never the normalised tensor.
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        x = to_tensor(resize(image, (self.input_size, self.input_size)), self.mean, self.std)
        return {
            "x": x,
            "small": np.ascontiguousarray(small),
            "seeds": torch.from_numpy(seeds_to_grid(seeds, (h, w)).astype(np.int64)),
            "label": torch.from_numpy(np.asarray(self.ds.labels()[i], dtype=np.float32)),
            "scale": float(self.crf_scale or max(H / h, W / w)),
        }


def collate(items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack the readable samples (None when none is)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    return {
        "x": torch.stack([it["x"] for it in items]),
        "small": [it["small"] for it in items],
        "seeds": torch.stack([it["seeds"] for it in items]),
        "label": torch.stack([it["label"] for it in items]),
        "scale": [it["scale"] for it in items],
    }


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int, world: int) -> list[list[int]]:
    """This rank's batches of one epoch (DistributedSampler's shuffle, full batches only).

    Deterministic in ``(seed, epoch)``, so a resumed run can skip the batches it has already consumed.
    """
    sampler = DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[k : k + batch_size] for k in range(0, len(order) - batch_size + 1, batch_size)]


def schedule(
    n: int, batch_size: int, start: int, stop: int, seed: int, rank: int, world: int
) -> list[list[int]]:
    """This rank's batches for iterations ``start .. stop - 1`` (one batch per iteration, epochs chained).

    Iteration ``t`` always gets the same batch, so a run resumed at ``start`` continues where it stopped.
    """
    per_epoch = len(epoch_batches(n, batch_size, 0, seed, rank, world))
    if per_epoch == 0:
        raise ValueError(f"{n} training images cannot fill one batch of {batch_size} per process")
    out: list[list[int]] = []
    epoch, skip = divmod(start, per_epoch)
    while len(out) < stop - start:
        out += epoch_batches(n, batch_size, epoch, seed, rank, world)[skip:]
        epoch, skip = epoch + 1, 0
    return out[: max(0, stop - start)]
