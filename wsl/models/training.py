"""Pieces of multi-label classifier training (stage=train): data, loss, schedule, validation, resume state.

Plain objects and functions; the stage wires them to its configuration.

Reproducible resume: the data order of an epoch depends only on (seed, epoch) (:class:`EpochSampler`), the
augmentation of an image only on (seed, epoch, image index) (:class:`LabelledImages`), and the global RNG
states are saved with the checkpoint (:func:`rng_state`). A run resumed from its last checkpoint therefore
ends with the same weights as an uninterrupted one on CPU, with any number of DataLoader workers (the
worker an image lands in does not matter); CUDA kernels that are not deterministic are the exception.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

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


class EpochSampler(Sampler):
    """This rank's ``(epoch, index)`` pairs of one epoch, shuffled by ``(seed, epoch)`` only
    (DistributedSampler's order), so that a resumed run sees the same batches as an uninterrupted one.
    Call :meth:`set_epoch` before each epoch."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.inner = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class LabelledImages(Dataset):
    """(image tensor, multi-hot label) pairs; a bad item yields :class:`Skipped` (kept out of batches by
    :func:`collate`, counted by the caller).

    Indexed by ``i`` (evaluation: ``transform(image)``) or by ``(epoch, i)`` from :class:`EpochSampler`
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
    sampler: EpochSampler,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """Full training batches in ``sampler``'s order and ordered validation batches."""
    kw = dict(num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory,
              persistent_workers=num_workers > 0)  # fmt: skip
    train = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True, **kw)
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
    had a usable item. The bad items go to ``failures`` (logged the first time only)."""
    net.train()
    losses = []
    for batch in track(loader, desc, unit="batch"):
        if failures is not None:
            failures.update(batch.skipped)
        if batch.x is None:
            continue
        x, y = batch.x.to(device, non_blocking=True), batch.y.to(device, non_blocking=True)
        value = multilabel_loss(net(x), y, loss)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        losses.append(value.item())
    return float(np.mean(losses)) if losses else float("nan")
