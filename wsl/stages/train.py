"""stage=train: a multi-label classifier on image-level labels -> ``train/``.

Writes ``last.pt`` (everything needed to resume: weights, optimizer, schedule, history, RNG states and the
bad items met so far), ``best.pt`` (the weights with the best val mAP), ``metrics.json``, ``curves.png``
and ``manifest.json``. The stage is done when ALL of them exist with ``last.pt`` at the final epoch; a
re-run resumes from ``last.pt`` (the same weights as an uninterrupted run on CPU: data order and
augmentation depend only on (seed, epoch, image)) or writes the files a kill left missing.
``stage.overwrite=true`` retrains. ``model.checkpoint`` initialises the weights. Unusable images are
skipped and counted; more than ``stage.max_failed`` of a split is one error line. Under torchrun: DDP, each
rank its share of every global batch of ``stage.batch_size`` and BatchNorm over the global batch
(:mod:`wsl.models.training`), so the steps are a single process's up to float rounding; rank 0 validates
and writes.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig

from wsl import dist, io
from wsl.data.transforms import EvalTransform, TrainTransform
from wsl.errors import Failures, UserError
from wsl.models import fit_state_dict
from wsl.models.training import (
    GlobalBatchSampler,
    LabelledImages,
    evaluate_classifier,
    make_loaders,
    rng_state,
    set_rng_state,
    sync_batchnorm,
    train_epoch,
    warmup_cosine,
)
from wsl.stages import common
from wsl.viz import plot_curves

log = logging.getLogger(__name__)
OUTPUTS = ("best.pt", "last.pt", "metrics.json", "curves.png", "manifest.json")


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed + dist.rank())
    out = common.layout(cfg).train()
    last_path, best_path = out / "last.pt", out / "best.pt"
    state = io.load_checkpoint(last_path) if last_path.is_file() and not st.overwrite else None
    trained = state is not None and state["epoch"] >= st.epochs and best_path.is_file()
    if trained and all((out / name).is_file() for name in OUTPUTS):
        log.info("classifier already trained (%s, %d epochs): nothing to do; stage.overwrite=true retrains",
                 last_path, state["epoch"])  # fmt: skip
        return io.read_json(out / "metrics.json")

    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    train_ds = common.build_dataset(cfg, cfg.dataset.train_split)
    val_ds = common.build_dataset(cfg, cfg.dataset.val_split)
    augment = TrainTransform(st.input_size, mean, std, st.min_crop_area, st.jitter, cfg.seed)
    train_set = LabelledImages(train_ds, augment, cfg.seed)
    val_set = LabelledImages(val_ds, EvalTransform(st.input_size, mean, std))
    if st.batch_size < dist.world_size():
        raise UserError(f"stage.batch_size={st.batch_size} cannot be shared by {dist.world_size()} processes")
    sampler = GlobalBatchSampler(len(train_set), st.batch_size, cfg.seed, dist.rank(), dist.world_size())
    train_loader, val_loader = make_loaders(
        train_set, val_set, st.batch_size, cfg.num_workers, sampler, device.type == "cuda"
    )
    if len(train_loader) == 0:
        raise UserError(f"{len(train_ds)} training images are fewer than stage.batch_size={st.batch_size}")
    model = common.build(cfg.model.build, f"model={cfg.model.name}").to(device)
    if cfg.model.get("checkpoint"):
        path = cfg.model.checkpoint
        fit_state_dict(model, io.load_state_dict(path), str(path), f"model={cfg.model.name}")
    model = sync_batchnorm(model, device)  # before the optimizer sees its parameters; the same state keys
    opt = torch.optim.AdamW(model.parameters(), lr=st.lr, weight_decay=st.weight_decay)
    steps = st.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, min(st.warmup_steps, steps // 4)))
    start_epoch, best, history, bad = 0, {}, [], {"train": Failures(), "val": Failures()}
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:
            raise UserError(
                f"{last_path} holds another model than model={cfg.model.name}: use another run=, delete it, "
                "or set stage.overwrite=true"
            ) from None
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        bad = {k: Failures(v) for k, v in state.get("failed", {"train": {}, "val": {}}).items()}
        if "rng" in state:
            set_rng_state(state["rng"])  # dropout and any other draw continue as if never interrupted
        log.info("resuming training from %s at epoch %d%s", last_path, start_epoch,
                 ": the last one, writing the outputs still missing" if trained else "")  # fmt: skip
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model

    for epoch in range(start_epoch, st.epochs):
        sampler.set_epoch(epoch)
        loss = train_epoch(net, train_loader, opt, sched, st.loss, device, f"train {epoch + 1}/{st.epochs}",
                           bad["train"])  # fmt: skip
        bad["train"] = dist.merge_all(bad["train"])
        bad["train"].check(len(train_ds), st.max_failed, f"train split {cfg.dataset.train_split}")
        if dist.is_main():
            metrics = {"epoch": epoch + 1, "loss": loss,
                       **evaluate_classifier(model, val_loader, device, bad["val"], st.loss)}  # fmt: skip
            bad["val"].check(len(val_ds), st.max_failed, f"train: val split {cfg.dataset.val_split}")
            log.info("epoch %d/%d: loss %.4f, val mAP %.4f, F1 macro %.4f", epoch + 1, st.epochs,
                     metrics["loss"], metrics["map"], metrics["f1_macro"])  # fmt: skip
            history.append(metrics)
            weights = {"model": model.state_dict(), "epoch": epoch + 1}
            if "epoch" not in best or metrics["map"] > best["map"]:  # the first epoch, or better
                best = dict(metrics)
                io.save_checkpoint(best_path, {**weights, "arch": cfg.model.name,
                                               "num_classes": cfg.dataset.num_classes})  # fmt: skip
            resume = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "best": best,
                      "failed": {k: v.as_dict() for k, v in bad.items()}, "rng": rng_state()}  # fmt: skip
            io.save_checkpoint(last_path, {**weights, **resume, "history": history})
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
        items = {"failed_items": bad["train"].as_dict(), "val_failed_items": bad["val"].as_dict()}
        done, failed = len(train_ds) - len(bad["train"]), len(bad["train"]) + len(bad["val"])
        common.write_manifest(out, cfg, started, done=done, failed=failed, **items)
    log.info("train: best val mAP %.1f %% at epoch %s -> %s", 100 * best.get("map", float("nan")),
             best.get("epoch"), best_path)  # fmt: skip
    return result
