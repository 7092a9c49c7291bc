"""Pieces of multi-label classifier training (stage=train): data, loss, schedule, validation, checkpoints.

Plain objects and functions; the stage wires them to its configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from wsl.metrics.classification import f1_scores, mean_average_precision
from wsl.progress import track


class LabelledImages(Dataset):
    """(image tensor, multi-hot label) pairs; an unreadable image yields None (dropped by :func:`collate`)."""

    def __init__(self, ds, transform: Callable) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        s = self.ds[i]
        if s["image"] is None:
            return None
        return self.transform(s["image"]), torch.from_numpy(np.asarray(s["label"], dtype=np.float32))


def collate(batch):
    """Stack the readable samples; None when the whole batch was unreadable."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


def worker_init(worker_id: int) -> None:
    """Give each DataLoader worker's augmentation its own generator, seeded from torch's worker seed."""
    info = torch.utils.data.get_worker_info()
    transform = info.dataset.transform
    if hasattr(transform, "rng"):
        transform.rng = np.random.default_rng(torch.initial_seed() % 2**32)


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
def evaluate_classifier(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """``map`` (mean average precision), ``f1_macro`` and ``f1_micro`` of ``model`` over ``loader``."""
    model.eval()
    scores, targets = [], []
    for batch in loader:
        if batch is None:
            continue
        x, y = batch
        scores.append(torch.sigmoid(model(x.to(device))).float().cpu())
        targets.append(y)
    s, t = torch.cat(scores).numpy(), torch.cat(targets).numpy()
    m, _ = mean_average_precision(s, t)
    return {"map": m, **f1_scores(s, t)}


def make_loaders(
    train_set: Dataset, val_set: Dataset, batch_size: int, num_workers: int, sampler=None, pin_memory=False
) -> tuple[DataLoader, DataLoader]:
    """Shuffled full training batches (``sampler`` under DDP) and ordered validation batches."""
    kw = dict(num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory,
              persistent_workers=num_workers > 0)  # fmt: skip
    train = DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                       drop_last=True, worker_init_fn=worker_init, **kw)  # fmt: skip
    return train, DataLoader(val_set, batch_size=batch_size, shuffle=False, **kw)


def train_epoch(net: torch.nn.Module, loader: DataLoader, opt, sched, loss: str, device, desc: str) -> float:
    """One pass over ``loader`` (optimizer and scheduler step per batch); the mean loss, NaN when every
    batch was unreadable."""
    net.train()
    losses = []
    for batch in track(loader, desc, unit="batch"):
        if batch is None:
            continue
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        value = multilabel_loss(net(x), y, loss)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        losses.append(value.item())
    return float(np.mean(losses)) if losses else float("nan")
