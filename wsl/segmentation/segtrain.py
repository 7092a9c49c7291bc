"""Training a segmentation network on pseudo-labels: DeepLab's recipe (Chen et al., TPAMI 2018), the last
step of the WSSS loop of SEC, PSA and IRN (shared/reference/wsss-loop.md, "The final network").

- Data (:class:`SegTrainSet`): each image and its pseudo-label PNG, a random scale (uniform in
  ``scale_range``; bilinear for the image, nearest for the labels), padded to the crop with zeros (the
  normalised mean pixel) and 255 labels, a random ``crop x crop`` window and a horizontal flip. Every draw
  comes from a generator seeded by ``(seed, iteration, image)``: the same sample whatever the process, the
  worker or an interruption.
- Loss: per-pixel cross-entropy on the logits upsampled bilinearly to the crop, pixels labelled 255
  ignored, averaged over the valid pixels of the whole global batch.
- Schedule: DeepLab's "poly" learning rate ``lr * (1 - it / max_it) ^ power`` (power 0.9), SGD with
  momentum, the last layer at x10 / x20 (:func:`wsl.models.deeplab.sec_param_groups`' multipliers).
- Batches (:func:`part_schedule`): iteration ``t`` always trains on the same global batch (SEC's
  :func:`~wsl.segmentation.sec.schedule`), cut into ``parts`` micro-batches; process ``r`` of ``w`` takes
  parts ``r, r + w, ...``, and the dropout of part ``p`` draws from a generator seeded by ``(seed, t, p)``.
  A run with ``parts`` micro-batches therefore computes the same gradient on 1 process (accumulating the
  parts) as on ``parts`` processes (DDP averaging them), batch-norm statistics included (they are per part).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from wsl.data.transforms import to_tensor
from wsl.segmentation.sec import image_and_png, schedule

__all__ = [
    "IGNORE",
    "SegTrainSet",
    "augment",
    "collate_parts",
    "loss_windows",
    "part_schedule",
    "pixel_ce_sum",
    "poly_lr",
    "set_poly_lr",
    "split_parts",
    "train_step",
]

log = logging.getLogger(__name__)
IGNORE = 255  # "no label" in pseudo-labels and seeds (VOC's void)


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """DeepLab's poly policy: ``base_lr * (1 - iteration / total) ^ power`` (0 at ``total``)."""
    if total < 1 or not 0 <= iteration <= total:
        raise ValueError(f"poly schedule: need 0 <= iteration <= total, total >= 1; got {iteration}, {total}")
    return float(base_lr * (1.0 - iteration / total) ** power)


def set_poly_lr(
    opt: torch.optim.Optimizer, base_lr: float, iteration: int, total: int, power: float
) -> float:
    """Set each parameter group to :func:`poly_lr` times its ``lr_mult`` (1 when absent); returns the base."""
    lr = poly_lr(base_lr, iteration, total, power)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr


def augment(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    crop: int,
    scale_range: Sequence[float],
    flip: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeepLab's training augmentation of one uint8 ``(H, W, 3)`` image and its ``(H, W)`` label map.

    Returns the ``(crop, crop, 3)`` image, the ``(crop, crop)`` labels (255 where padded) and a
    ``(crop, crop)`` bool mask of the pixels that come from the image (False: padding, normalised to 0).
    """
    lo, hi = float(scale_range[0]), float(scale_range[1])
    s = rng.uniform(lo, hi) if hi > lo else lo
    H, W = label.shape
    h, w = max(1, round(H * s)), max(1, round(W * s))
    if (h, w) != (H, W):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    ph, pw = max(crop, h), max(crop, w)
    big_im = np.zeros((ph, pw, 3), np.uint8)
    big_lab = np.full((ph, pw), IGNORE, np.uint8)
    inside = np.zeros((ph, pw), bool)
    big_im[:h, :w], big_lab[:h, :w], inside[:h, :w] = image, label, True
    y0, x0 = int(rng.integers(0, ph - crop + 1)), int(rng.integers(0, pw - crop + 1))
    window = np.s_[y0 : y0 + crop, x0 : x0 + crop]
    out = big_im[window], big_lab[window], inside[window]
    if flip and rng.random() < 0.5:
        out = tuple(a[:, ::-1] for a in out)
    return tuple(np.ascontiguousarray(a) for a in out)  # type: ignore[return-value]


class SegTrainSet(Dataset):
    """Augmented samples of ``ds`` with the pseudo-labels ``labels_dir/<id>.png``.

    Items are keyed by ``(iteration, j)`` (``j`` a position in ``indices``), the key that seeds the
    augmentation. A sample is ``{"x": (3, crop, crop) float32, "y": (crop, crop) int64}``; an unreadable
    image or label file, or a label of the wrong size, yields None (logged; :func:`collate_parts` drops it).
    """

    def __init__(
        self,
        ds,
        indices: Sequence[int],
        labels_dir: str | Path,
        crop: int,
        scale_range: Sequence[float],
        flip: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
    ) -> None:
        self.ds, self.indices, self.labels_dir = ds, list(indices), Path(labels_dir)
        self.crop, self.scale_range, self.flip, self.seed = (
            int(crop),
            tuple(scale_range),
            bool(flip),
            int(seed),
        )
        self.mean, self.std = list(mean), list(std)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor] | None:
        iteration, j = key
        i = self.indices[j]
        pair = image_and_png(self.ds, i, self.labels_dir, "labels")
        if pair is None:
            return None
        image, label = pair
        rng = np.random.default_rng([self.seed, iteration, i])
        im, lab, inside = augment(image, label, rng, self.crop, self.scale_range, self.flip)
        x = to_tensor(im, self.mean, self.std) * torch.from_numpy(inside)  # padding = the mean pixel (0)
        return {"x": x, "y": torch.from_numpy(lab.astype(np.int64))}


def collate_parts(items: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor] | None:
    """Stack the readable samples of a micro-batch (None when none is)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    return {"x": torch.stack([it["x"] for it in items]), "y": torch.stack([it["y"] for it in items])}


def split_parts(batch: Sequence[int], parts: int) -> list[list[int]]:
    """``batch`` cut into ``parts`` consecutive micro-batches whose sizes differ by at most one."""
    if not 1 <= parts <= len(batch):
        raise ValueError(f"cannot cut a batch of {len(batch)} into {parts} micro-batches")
    return [[int(j) for j in a] for a in np.array_split(np.asarray(batch, dtype=np.int64), parts)]


def part_schedule(
    n: int, batch_size: int, parts: int, start: int, stop: int, seed: int, rank: int, world: int
) -> list[list[tuple[int, int]]]:
    """This process's micro-batches for iterations ``start .. stop - 1``, in order: for each iteration
    the parts ``rank, rank + world, ...`` of the global batch, each a list of ``(iteration, j)`` keys.

    The global batches are those of one process (the same for every ``world``); ``parts`` must be a
    multiple of ``world``.
    """
    if parts % world:
        raise ValueError(f"{parts} micro-batches cannot be shared by {world} processes")
    out = []
    for it, batch in enumerate(schedule(n, batch_size, start, stop, seed, 0, 1), start):
        out += [[(it, j) for j in part] for part in split_parts(batch, parts)[rank::world]]
    return out


def pixel_ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of the ``(B, C, h, w)`` logits, upsampled bilinearly to the ``(B, H, W)``
    labels, over the pixels not labelled 255."""
    up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(up.float(), labels, ignore_index=IGNORE, reduction="sum")


def loss_windows(history: list[dict], every: int) -> list[dict]:
    """Means of the loss over windows of ``every`` iterations (what ``loss.png`` draws)."""
    k = max(1, every)
    return [
        {
            "iteration": history[min(j + k, len(history)) - 1]["iteration"],
            "loss": float(np.mean([h["loss"] for h in history[j : j + k]])),
        }
        for j in range(0, len(history), k)
    ]


def part_seed(seed: int, iteration: int, part: int) -> int:
    """The torch seed of micro-batch ``part`` of ``iteration`` (its dropout masks)."""
    return int(np.random.SeedSequence([seed, iteration, part]).generate_state(1, np.uint64)[0] >> 1)


def train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    parts: list[tuple[int, dict[str, Any] | None]],
    iteration: int,
    seed: int,
    world: int,
    reduce_sum: Callable[[list[float]], list[float]],
    device: torch.device,
) -> tuple[float, float]:
    """One SGD step on this process's micro-batches ``[(part index, batch)]`` of the global batch.

    Each part's summed cross-entropy is divided by the valid pixels of the whole global batch
    (``reduce_sum`` adds the counts of every process) and multiplied by ``world`` (DDP averages the
    gradients of the processes); the gradients of the parts accumulate, DDP synchronising on the last.
    Returns the global summed loss and valid pixel count (the mean loss is their ratio).
    """
    valid = sum(float((b["y"] != IGNORE).sum()) for _, b in parts if b is not None)
    total = reduce_sum([valid])[0]
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    live = [(p, b) for p, b in parts if b is not None]
    for k, (p, batch) in enumerate(live):
        torch.manual_seed(part_seed(seed, iteration, p))  # dropout masks of this part, on any process
        last = k == len(live) - 1
        sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
        with sync:
            s = pixel_ce_sum(net(batch["x"].to(device)), batch["y"].to(device))
            (s * (world / max(total, 1.0))).backward()
        loss_sum += float(s.detach())
    opt.step()
    return reduce_sum([loss_sum])[0], total
