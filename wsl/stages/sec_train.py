"""The pieces of SEC's training loop (stage=sec): losses of a batch, lr schedule, checkpoints, final files.

SEC: Kolesnikov & Lampert, "Seed, Expand and Constrain", ECCV 2016 (losses: wsl.segmentation.losses).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from wsl import dist, io
from wsl.segmentation import CRFPool, constrain_loss, dense_crf, expansion_loss, prob_floor, seeding_loss
from wsl.stages import common
from wsl.viz import plot_curves

log = logging.getLogger(__name__)
LOSSES = ("seed", "expand", "constrain", "total")


def sec_losses(
    logits: torch.Tensor,
    batch: dict[str, Any],
    pool: CRFPool,
    decays: tuple[float, float, float],
    weights: DictConfig,
    crf_iterations: int,
) -> tuple[dict[str, torch.Tensor], float]:
    """SEC's three losses of one batch and their weighted sum, plus the seconds spent in the CRFs.

    Args:
        logits: ``(B, C, h, w)`` network output, class 0 background.
        batch: from :func:`wsl.stages.sec_data.collate` (grid seeds, labels, CRF images and scales).
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


def resume(out: Path, model, opt, overwrite: bool) -> tuple[int, list[dict], torch.Tensor | None]:
    """Load ``last.pt`` into ``model`` and ``opt``: (iteration, history, torch RNG state to restore)."""
    last = out / "last.pt"
    if overwrite or not last.is_file():
        return 0, [], None
    state = io.load_checkpoint(last)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    log.info("resuming SEC training from %s at iteration %d", last, state["iteration"])
    return int(state["iteration"]), list(state["history"]), state["rng"]


def save_last(out: Path, model, opt, it: int, history: list[dict], meta: dict) -> None:
    """``last.pt``: everything a resumed run needs (rank 0 writes, every rank waits)."""
    if dist.is_main():
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it}
        io.save_checkpoint(
            out / "last.pt", {**state, "history": history, "rng": torch.get_rng_state(), **meta}
        )
    dist.barrier()


def finish(
    cfg: DictConfig,
    out: Path,
    model,
    history: list[dict],
    spent: dict[str, float],
    ran: int,
    meta: dict,
    n_images: int,
    started: float,
) -> dict:
    """``final.pt``, ``history.json``, ``loss.png`` (means over ``log_every`` windows), metrics, manifest."""
    k = max(1, cfg.stage.log_every)
    windows = [
        {"iteration": history[min(j + k, len(history)) - 1]["iteration"],
         **{n: float(np.mean([h[n] for h in history[j : j + k]])) for n in LOSSES}}
        for j in range(0, len(history), k)
    ]  # fmt: skip
    it = history[-1]["iteration"] if history else 0
    per_it = {key: v / ran for key, v in spent.items()} if ran else {}
    metrics = {
        "iterations": it,
        "images": n_images,
        "grid": meta["grid"],
        "segmodel": cfg.segmodel.name,
        "final_losses": windows[-1] if windows else None,
        "seconds_per_iteration": per_it,  # of this invocation (a resumed run times its own iterations)
        "crf_share": spent["crf"] / max(1e-12, sum(spent.values())) if ran else None,
    }
    if dist.is_main():
        io.save_checkpoint(out / "final.pt", {"model": model.state_dict(), "iteration": it, **meta})
        io.write_json(out / "history.json", history)
        plot_curves(out / "loss.png", windows, LOSSES, f"SEC losses ({cfg.segmodel.name}, {cfg.cam.name})")
        common.write_metrics(out, metrics)
        common.write_manifest(out, cfg, started, done=ran, iterations=it, seconds_per_iteration=per_it)
    dist.barrier()
    log.info("SEC done: %d iterations, last losses %s; s/it %s", it, metrics["final_losses"],
             {key: round(v, 4) for key, v in per_it.items()})  # fmt: skip
    return metrics
