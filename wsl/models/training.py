"""Pieces of multi-label classifier training (stage=train): data, loss, schedule, validation, resume state.

Plain objects and functions; the stage wires them to its configuration.

Reproducible resume: the data order of an epoch depends only on (seed, epoch) (:class:`EpochSampler`), the
augmentation of an image only on (seed, epoch, image index) (:class:`LabelledImages`), and the global RNG
states are saved with the checkpoint (:func:`rng_state`). A run resumed from its last checkpoint therefore
ends with the same weights as an uninterrupted one on CPU, with any number of DataLoader workers (the
worker an image lands in does not matter); CUDA kernels that are not deterministic are the exception.

Several processes (torchrun, DDP): every global batch is the one a single process would take
(:class:`GlobalBatchSampler`: rank r gets the items r, r + world, ... of it), each rank's loss is weighted by
its share of the batch's usable images (:func:`train_epoch`) and BatchNorm takes its statistics over the
global batch (:func:`sync_batchnorm`), so that the step is that of one process up to the order of float
sums. Augmentation depends on (seed, epoch, image), not on the rank. The classifiers have no dropout.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from wsl import dist
from wsl.errors import Failures
from wsl.metrics.classification import f1_scores, mean_average_precision
from wsl.progress import track


class Skipped(NamedTuple):
    """A sample that could not be used: its image id and why."""

    id: str
    reason: str


class Batch(NamedTuple):
    """Stacked samples: ``x`` (B, 3, S, S) and ``y`` (B, C) float32, None when no sample of the batch was
    usable; ``skipped`` the bad items of the batch."""

    x: torch.Tensor | None
    y: torch.Tensor | None
    skipped: list[Skipped]


class GlobalBatchSampler(Sampler):
    """This rank's share of every global batch of one epoch, as lists of ``(epoch, index)`` pairs.

    The epoch's order is a permutation drawn from ``(seed, epoch)`` only (DistributedSampler's shuffle);
    global batch k is items ``k * batch_size .. (k + 1) * batch_size - 1`` of it (a last incomplete batch is
    dropped) and rank r takes items r, r + world, ... of each. The union over ranks of batch k is therefore
    the batch a single process takes, whatever the number of ranks, and a resumed run sees the same batches
    as an uninterrupted one. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world of size {world}")
        if batch_size < world:
            raise ValueError(f"a batch of {batch_size} cannot be shared by {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)  # DistributedSampler's draw: the same order as before
        order = torch.randperm(self.n, generator=g).tolist()
        for k in range(len(self)):
            batch = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield [(self.epoch, i) for i in batch[self.rank :: self.world]]

    def __len__(self) -> int:
        return self.n // self.batch_size


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across the ranks of the
    default process group, on any device (torch's SyncBatchNorm is for GPUs only; this one serves the
    CPU/gloo case). The per-rank sums travel through the autograd-aware all-reduce of
    ``torch.distributed.nn``, so that the gradient is that of the global batch too (the same derivation as
    SyncBatchNorm's). Two passes (mean, then centred squares) as in one process's batch norm. In eval mode,
    or alone, it is exactly BatchNorm2d; its state dict has the same keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = all_reduce(torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype, device=x.device))
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its BatchNorm2d layers taking global-batch statistics under several processes:
    torch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm2d` elsewhere; unchanged in a single process.
    Weights, buffers, ``requires_grad`` and train/eval modes are kept (frozen BatchNorm stays frozen)."""
    if not (dist.is_initialized() and dist.world_size() > 1):
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if type(module) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats).to(next(module.buffers()).device)  # fmt: skip
            bn.load_state_dict(module.state_dict())
            if module.affine:
                bn.weight.requires_grad_(module.weight.requires_grad)
                bn.bias.requires_grad_(module.bias.requires_grad)
            bn.train(module.training)
            return bn
        for name, child in module.named_children():
            module.add_module(name, convert(child))
        return module

    return convert(model)


class LabelledImages(Dataset):
    """(image tensor, multi-hot label) pairs; a bad item yields :class:`Skipped` (kept out of batches by
    :func:`collate`, counted by the caller).

    Indexed by ``i`` (evaluation: ``transform(image)``) or by ``(epoch, i)`` from :class:`GlobalBatchSampler`
    (training: ``transform(image, rng)`` with ``rng`` seeded by ``(seed, epoch, i)``).
    """

    def __init__(self, ds, transform: Callable, seed: int = 0) -> None:
        self.ds, self.transform, self.seed = ds, transform, int(seed)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (None, key)
        s = self.ds[i]
        if s["image"] is None:
            return Skipped(s["id"], s["error"])
        if epoch is None:
            x = self.transform(s["image"])
        else:
            x = self.transform(s["image"], np.random.default_rng([self.seed % 2**63, epoch, i]))
        return x, torch.from_numpy(np.asarray(s["label"], dtype=np.float32))


def collate(batch) -> Batch:
    """Stack the usable samples; the others go to ``skipped``."""
    skipped = [b for b in batch if isinstance(b, Skipped)]
    good = [b for b in batch if not isinstance(b, Skipped)]
    if not good:
        return Batch(None, None, skipped)
    return Batch(torch.stack([b[0] for b in good]), torch.stack([b[1] for b in good]), skipped)


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, NumPy, Python) as tensors and numbers, so that a
    checkpoint holding them still loads with ``weights_only=True``."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },  # fmt: skip
        "python": {
            "version": int(version),
            "state": torch.tensor(state, dtype=torch.int64),
            "gauss": gauss_next,
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))


def multilabel_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``bce``: binary cross-entropy on logits; ``softmargin``: multi-label soft margin (IRN, PSA)."""
    if kind == "softmargin":
        return F.multilabel_soft_margin_loss(logits, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"loss must be 'bce' or 'softmargin', not {kind!r}")


def warmup_cosine(steps: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``i``: linear warm-up over ``warmup`` steps, then a cosine to 0."""

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (i - warmup) / max(1, steps - warmup)))

    return factor


@torch.no_grad()
def evaluate_classifier(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    failures: Failures | None = None,
    loss: str = "bce",
) -> dict[str, float]:
    """``map`` (mean average precision), ``f1_macro``, ``f1_micro`` and ``val_loss`` (the training loss
    ``loss`` on these images, for the train-versus-val curve) of ``model`` over ``loader``; the bad items
    go to ``failures``. Everything is NaN when no item was usable."""
    model.eval()
    logits, targets = [], []
    for batch in loader:
        if failures is not None:
            failures.update(batch.skipped)
        if batch.x is None:
            continue
        logits.append(model(batch.x.to(device)).float().cpu())
        targets.append(batch.y)
    if not logits:
        return dict.fromkeys(("map", "f1_macro", "f1_micro", "val_loss"), float("nan"))
    z, y = torch.cat(logits), torch.cat(targets)
    s, t = torch.sigmoid(z).numpy(), y.numpy()
    m, _ = mean_average_precision(s, t)
    return {"map": m, **f1_scores(s, t), "val_loss": float(multilabel_loss(z, y, loss))}


def make_loaders(
    train_set: Dataset,
    val_set: Dataset,
    batch_size: int,
    num_workers: int,
    sampler: GlobalBatchSampler,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """This rank's share of the full training batches of ``sampler`` and ordered validation batches of
    ``batch_size``."""
    kw = dict(num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory,
              persistent_workers=num_workers > 0)  # fmt: skip
    train = DataLoader(train_set, batch_sampler=sampler, **kw)
    return train, DataLoader(val_set, batch_size=batch_size, shuffle=False, **kw)


def train_epoch(
    net: torch.nn.Module,
    loader: DataLoader,
    opt,
    sched,
    loss: str,
    device,
    desc: str,
    failures: Failures | None = None,
) -> float:
    """One pass over ``loader`` (optimizer and scheduler step per batch); the mean loss, NaN when no batch
    had a usable item. The bad items go to ``failures`` (logged the first time only).

    Under several processes (``net`` wrapped in DDP, which averages the gradients over the ranks) each
    rank's mean loss is weighted by ``world * usable here / usable in the global batch``, so that the
    gradient is that of the mean over the global batch even when bad items make the shares unequal. A
    batch is skipped on every rank when one rank's share holds no usable image (a single process would
    step on the others' images: the one case where the runs differ)."""
    net.train()
    losses = []
    world = dist.world_size() if dist.is_initialized() else 1
    for batch in track(loader, desc, unit="batch"):
        if failures is not None:
            failures.update(batch.skipped)
        here = 0 if batch.x is None else len(batch.x)
        usable, empty = (here, float(here == 0)) if world == 1 else dist.all_reduce_sum([here, here == 0])
        if empty:
            continue
        x, y = batch.x.to(device, non_blocking=True), batch.y.to(device, non_blocking=True)
        value = multilabel_loss(net(x), y, loss)
        opt.zero_grad(set_to_none=True)
        (value * (world * here / usable) if world > 1 else value).backward()
        opt.step()
        sched.step()
        mean = value.item() if world == 1 else dist.all_reduce_sum([value.item() * here])[0] / usable
        losses.append(mean)
    return float(np.mean(losses)) if losses else float("nan")
