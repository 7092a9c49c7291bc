"""SEC's training and inference pieces (Kolesnikov & Lampert, "Seed, Expand and Constrain", ECCV 2016).

Training data: SEC resizes every image to the network input (321 x 321 for LargeFOV: no crop, no
mirroring). Seeds made at image resolution reach the output grid by the most common label per cell
(:func:`wsl.segmentation.seeds_to_grid`). The constrain loss's CRF runs on the ORIGINAL uint8 image
downscaled to the grid (area interpolation), with kernel widths divided by ``s = image side / grid side``
(SEC: about 500 / 41 = 12). The losses themselves are in :mod:`wsl.segmentation.losses`; the learning
rate follows Caffe's "step" policy; a batch schedule that is a pure function of the iteration makes a
resumed run draw the same batches as an uninterrupted one. Inference (:func:`predict_probs`) averages the
softmax over scales and flips at image resolution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from wsl import io
from wsl.data.transforms import resize, to_tensor
from wsl.segmentation.crf import CRFPool, dense_crf
from wsl.segmentation.grid import seeds_to_grid
from wsl.segmentation.losses import constrain_loss, expansion_loss, prob_floor, seeding_loss

log = logging.getLogger(__name__)
LOSSES = ("seed", "expand", "constrain", "total")


def image_and_png(ds: Any, i: int, folder: Path, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Image ``i`` of ``ds`` and its label PNG ``folder/<id>.png`` (seeds, pseudo-labels) for a training
    batch; None, with one warning, when either is unreadable or their sizes differ (the batch goes on)."""
    try:
        image = ds.load_image(i)
        label = io.read_label_png(folder / f"{ds.ids[i]}.png")
    except (OSError, ValueError) as e:
        log.warning("skipping %s in this batch: %s", ds.ids[i], e)
        return None
    if label.shape != image.shape[:2]:
        log.warning("skipping %s: %s %s, image %s", ds.ids[i], what, label.shape, image.shape[:2])
        return None
    return image, label


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
        pair = image_and_png(self.ds, i, self.seeds_dir, "seeds")
        if pair is None:
            return None
        image, seeds = pair
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


def sec_losses(
    logits: torch.Tensor,
    batch: dict[str, Any],
    pool: CRFPool,
    decays: tuple[float, float, float],
    weights: dict[str, float],
    crf_iterations: int,
) -> tuple[dict[str, torch.Tensor], float]:
    """SEC's three losses of one batch and their weighted sum, plus the seconds spent in the CRFs.

    Args:
        logits: ``(B, C, h, w)`` network output, class 0 background.
        batch: from :func:`collate` (grid seeds, labels, CRF images and scales).
        decays: GWRP decays (d+, d-, d_bg) already rescaled to the grid.
    """
    probs = prob_floor(logits)  # softmax + 1e-4, renormalised (SEC)
    seeds = batch["seeds"].to(logits.device)
    label = batch["label"].to(logits.device)
    loss = {"seed": seeding_loss(torch.log(probs), seeds), "expand": expansion_loss(probs, label, *decays)}
    t0 = time.perf_counter()
    f = probs.detach().float().cpu().numpy()
    jobs = ((im, p, s, crf_iterations) for im, p, s in zip(batch["small"], f, batch["scale"]))
    q = np.stack(list(pool.imap(dense_crf, jobs)))  # Q is a fixed target: no gradient (SEC's final code)
    crf_s = time.perf_counter() - t0
    loss["constrain"] = constrain_loss(probs, q)
    loss["total"] = sum(weights[k] * loss[k] for k in ("seed", "expand", "constrain"))
    return loss, crf_s


def set_lr(opt: torch.optim.Optimizer, base_lr: float, iteration: int, step: int, gamma: float) -> float:
    """Caffe's "step" policy: ``base_lr * gamma^(iteration // step)`` times each group's ``lr_mult``."""
    lr = base_lr * gamma ** (iteration // step)
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_mult"]
    return lr


def sync(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (honest timings on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@torch.no_grad()
def grid_size(model: torch.nn.Module, input_size: int, device: torch.device) -> tuple[int, int]:
    """Output grid ``(h, w)`` of ``model`` for a square ``input_size`` input (41 x 41 for LargeFOV at 321)."""
    was_training = model.training
    model.eval()
    h, w = model(torch.zeros(1, 3, input_size, input_size, device=device)).shape[-2:]
    model.train(was_training)
    return int(h), int(w)


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    images: list[np.ndarray],
    size: int,
    scales: list[float],
    flip: bool,
    mean: list[float],
    std: list[float],
    device: torch.device,
) -> list[np.ndarray]:
    """Class probabilities ``(C, H, W)`` per image: softmax at ``size * scale`` (square, as SEC resizes),
    upsampled bilinearly to each image's size, averaged over scales and flips."""
    sums = [None] * len(images)
    for scale in scales:
        side = max(8, round(size * scale))
        x = torch.stack([to_tensor(resize(im, (side, side)), mean, std) for im in images]).to(device)
        probs = torch.softmax(model(x), dim=1)
        if flip:
            probs = (probs + torch.softmax(model(x.flip(-1)), dim=1).flip(-1)) / 2
        for k, im in enumerate(images):
            up = F.interpolate(probs[k : k + 1], size=im.shape[:2], mode="bilinear", align_corners=False)[0]
            sums[k] = up if sums[k] is None else sums[k] + up
    return [(s / len(scales)).float().cpu().numpy() for s in sums]


def loss_windows(history: list[dict], every: int) -> list[dict]:
    """Means of the losses over windows of ``every`` iterations (what ``loss.png`` draws)."""
    k = max(1, every)
    return [
        {
            "iteration": history[min(j + k, len(history)) - 1]["iteration"],
            **{n: float(np.mean([h[n] for h in history[j : j + k]])) for n in LOSSES},
        }
        for j in range(0, len(history), k)
    ]


def sec_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    batch: dict[str, Any],
    pool: CRFPool,
    decays: tuple[float, float, float],
    weights: dict[str, float],
    crf_iterations: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, float]]:
    """One SGD step of SEC on ``batch``: this process's losses (:data:`LOSSES`) and the seconds spent in
    the network's forward pass, the CRFs and the backward pass (device work included, see :func:`sync`)."""
    t0 = sync(device)
    loss, crf_s = sec_losses(net(batch["x"].to(device)), batch, pool, decays, weights, crf_iterations)
    t1 = sync(device)
    opt.zero_grad(set_to_none=True)
    loss["total"].backward()
    opt.step()
    t2 = sync(device)
    seconds = {"forward": t1 - t0 - crf_s, "crf": crf_s, "backward": t2 - t1}
    return {k: loss[k].item() for k in LOSSES}, seconds
