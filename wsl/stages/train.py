"""stage=train: a multi-label classifier on image-level labels.

Writes ``train/last.pt`` (everything needed to resume), ``train/best.pt`` (the weights with the best val
mAP), ``train/metrics.json``, ``train/curves.png`` and ``train/manifest.json``. A re-run resumes from
``last.pt``; a finished run is left alone unless ``stage.overwrite=true``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from wsl import dist, io
from wsl.data.transforms import EvalTransform, TrainTransform
from wsl.metrics.classification import f1_scores, mean_average_precision
from wsl.stages import common
from wsl.viz import plot_curves

log = logging.getLogger(__name__)


class _Labelled(Dataset):
    """(image tensor, label) pairs; an unreadable image yields None and is dropped by the collate."""

    def __init__(self, ds, transform) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        s = self.ds[i]
        if s["image"] is None:
            return None
        return self.transform(s["image"]), torch.from_numpy(np.asarray(s["label"], dtype=np.float32))

    def worker_seed(self, worker_id: int) -> None:
        if hasattr(self.transform, "rng"):
            seed = torch.initial_seed() % 2**32
            self.transform.rng = np.random.default_rng(seed)


def _collate(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.worker_seed(worker_id)


def _loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "softmargin":
        return F.multilabel_soft_margin_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Val mAP and F1 of ``model`` over ``loader``."""
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


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed + dist.rank())
    out = common.run_dir(cfg) / "train"
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.is_file() and not st.overwrite:
        state = io.load_checkpoint(last_path)
        if state["epoch"] >= st.epochs and best_path.is_file():
            log.info(
                "classifier already trained (%s, %d epochs): nothing to do; stage.overwrite=true retrains",
                last_path,
                state["epoch"],
            )
            return io.read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}

    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    train_ds = common.build_dataset(cfg, cfg.dataset.train_split)
    val_ds = common.build_dataset(cfg, cfg.dataset.val_split)
    train_set = _Labelled(
        train_ds, TrainTransform(st.input_size, mean, std, st.min_crop_area, st.jitter, cfg.seed)
    )
    val_set = _Labelled(val_ds, EvalTransform(st.input_size, mean, std))
    sampler = DistributedSampler(train_set, seed=cfg.seed) if dist.is_initialized() else None
    loader_kw = dict(
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
    train_loader = DataLoader(
        train_set,
        batch_size=st.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        worker_init_fn=_worker_init,
        **loader_kw,
    )
    val_loader = DataLoader(val_set, batch_size=st.batch_size, shuffle=False, **loader_kw)

    model = instantiate(cfg.model.build).to(device)
    if cfg.model.get("checkpoint"):
        model.load_state_dict(io.load_checkpoint(cfg.model.checkpoint).get("model"))
    opt = torch.optim.AdamW(model.parameters(), lr=st.lr, weight_decay=st.weight_decay)
    steps = st.epochs * len(train_loader)
    warm = min(st.warmup_steps, steps // 4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda i: (
            (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm)))
        ),
    )
    history: list[dict] = []
    start_epoch, best = 0, {"map": -1.0}
    if last_path.is_file() and not st.overwrite:
        state = io.load_checkpoint(last_path)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:
            raise common.UserError(
                f"{last_path} holds another model than model={cfg.model.name}: use another run=, delete it, "
                "or set stage.overwrite=true"
            ) from None
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        log.info("resuming training from %s at epoch %d", last_path, start_epoch)
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model

    for epoch in range(start_epoch, st.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        losses = []
        for batch in common.progress(train_loader, f"train {epoch + 1}/{st.epochs}", unit="batch"):
            if batch is None:
                continue
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            loss = _loss(net(x), y, st.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        metrics = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan")}
        if dist.is_main():
            metrics.update(evaluate(model, val_loader, device))
            log.info(
                "epoch %d/%d: loss %.4f, val mAP %.4f, F1 macro %.4f",
                epoch + 1,
                st.epochs,
                metrics["loss"],
                metrics["map"],
                metrics["f1_macro"],
            )
            history.append(metrics)
            if metrics["map"] > best["map"]:
                best = dict(metrics)
                io.save_checkpoint(
                    best_path,
                    {
                        "model": model.state_dict(),
                        "epoch": epoch + 1,
                        "arch": cfg.model.name,
                        "num_classes": cfg.dataset.num_classes,
                    },
                )
            io.save_checkpoint(
                last_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch + 1,
                    "best": best,
                    "history": history,
                },
            )
        dist.barrier()

    result = {
        "best_val_map": best.get("map"),
        "best_val_f1_macro": best.get("f1_macro"),
        "best_val_f1_micro": best.get("f1_micro"),
        "best_epoch": best.get("epoch"),
        "epochs": st.epochs,
        "train_images": len(train_ds),
        "val_images": len(val_ds),
    }
    if dist.is_main():
        common.write_metrics(out, result)
        plot_curves(out / "curves.png", history, ("loss", "map", "f1_macro"), "classifier training")
        common.write_manifest(out, cfg, started, done=len(train_ds))
    log.info(
        "training done: best val mAP %.4f at epoch %s (%s)",
        best.get("map", float("nan")),
        best.get("epoch"),
        Path(best_path),
    )
    return result
