"""stage=sec: Seed, Expand and Constrain (Kolesnikov & Lampert, ECCV 2016) on ``seeds/<cam>/<split>/``.

Trains ``segmodel`` with SEC's three losses (:func:`wsl.segmentation.sec.sec_losses`), weights 1:1:1
(``stage.weights``): seeding on the seeds brought to the output grid, expansion with global weighted rank
pooling (d+ 0.996, d- 0, d_bg 0.999 for 41 x 41, rescaled with :func:`~wsl.segmentation.decay_for_grid`),
and constrain-to-boundary against a dense CRF on the image downscaled to the grid. SGD with momentum and
SEC's Caffe multipliers (:func:`~wsl.models.deeplab.sec_param_groups`), lr x gamma every ``lr_step``.
Writes ``sec/<cam>/last.pt`` every ``checkpoint_every`` iterations (a re-run resumes from it, dropout RNG
included), ``final.pt``, ``history.json``, ``loss.png``, ``metrics.json``, ``manifest.json``; the stage is
done when all of them exist (a re-run after a kill writes the missing ones). Under
torchrun: DDP, each rank its share of every batch (the global batches are a single process's when
``batch_size`` is a multiple of the processes), BatchNorm over the global batch, rank 0 writes; dropout
masks come from each rank's generator, so a run matches one process in distribution, not bit for bit.
``metrics.json`` says where the time goes (``seconds_per_iteration``, ``crf_share``): the network, or the
CRFs between forward and backward.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from wsl import dist, io
from wsl.models.deeplab import sec_param_groups
from wsl.models.training import sync_batchnorm
from wsl.progress import track
from wsl.segmentation import CRFPool, decay_for_grid
from wsl.segmentation.sec import (
    LOSSES,
    SECTrainSet,
    collate,
    grid_size,
    loss_windows,
    schedule,
    sec_step,
    set_lr,
)
from wsl.stages import common
from wsl.viz import plot_curves

log = logging.getLogger(__name__)
OUTPUTS = ("final.pt", "history.json", "loss.png", "metrics.json", "manifest.json")


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed + dist.rank())
    split = common.split_name(cfg)
    lay = common.layout(cfg)
    seeds_dir, out = lay.seeds(cfg.cam.name, split), lay.sec(cfg.cam.name)
    if all((out / name).is_file() for name in OUTPUTS) and not st.overwrite:
        if io.load_checkpoint(out / "final.pt").get("iteration", 0) >= st.iterations:
            log.info("SEC already trained (%s): nothing to do; stage.overwrite=true retrains", out)
            return io.read_json(out / "metrics.json")
    ds = common.build_dataset(cfg, split)
    indices = [i for i in range(len(ds)) if (seeds_dir / f"{ds.ids[i]}.png").is_file()]
    if len(indices) < len(ds):
        log.warning("%d of %d images have no seeds in %s: left out", len(ds) - len(indices), len(ds),
                    seeds_dir)  # fmt: skip
    model = sync_batchnorm(common.build_segmodel(cfg).to(device), device)  # BatchNorm: the global batch
    grid = grid_size(model, cfg.segmodel.input_size, device)
    meta = common.segmodel_meta(cfg, grid)
    decays = tuple(decay_for_grid(d, grid[0] * grid[1]) for d in (st.d_pos, st.d_neg, st.d_bg))
    opt = torch.optim.SGD(sec_param_groups(model, st.lr, st.weight_decay), lr=st.lr, momentum=st.momentum)
    start, history, state = common.resume(out, model, opt, st.overwrite, "SEC training")
    rng = state.get("rng")
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    per_rank = max(1, st.batch_size // dist.world_size())
    train_set = SECTrainSet(ds, indices, seeds_dir, cfg.segmodel.input_size, grid, cfg.dataset.mean,
                            cfg.dataset.std, st.crf_scale)  # fmt: skip
    batches = schedule(len(indices), per_rank, start, st.iterations, cfg.seed, dist.rank(), dist.world_size())
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=cfg.num_workers, collate_fn=collate,
                        pin_memory=device.type == "cuda")  # fmt: skip
    log.info("SEC: %s on %d images of %s, grid %dx%d, decays %s, iterations %d..%d, batch %d x %d ranks",
             cfg.segmodel.name, len(indices), split, *grid, [round(d, 6) for d in decays], start,
             st.iterations, per_rank, dist.world_size())  # fmt: skip
    spent = dict.fromkeys(("data", "forward", "crf", "backward"), 0.0)
    weights = {k: float(st.weights[k]) for k in ("seed", "expand", "constrain")}
    it, net, stream = start, net.train(), iter(loader)  # the iterator draws from the torch RNG: restore after
    if rng is not None:
        torch.set_rng_state(rng)  # dropout continues as if the run had never stopped
    with CRFPool(st.crf_processes) as pool:
        t = time.perf_counter()
        for batch in track(stream, f"sec {cfg.cam.name}", total=len(batches), unit="it"):
            spent["data"] += time.perf_counter() - t
            lr = set_lr(opt, st.lr, it, st.lr_step, st.lr_gamma)
            it += 1
            if dist.all_reduce_sum([float(batch is not None)])[0] == dist.world_size():  # all ranks agree
                losses, times = sec_step(net, opt, batch, pool, decays, weights, st.crf_iterations, device)
                spent.update({k: spent[k] + v for k, v in times.items()})
                mean = [v / dist.world_size() for v in dist.all_reduce_sum([losses[k] for k in LOSSES])]
                history.append({"iteration": it, "lr": lr, **dict(zip(LOSSES, mean))})
                if it % st.log_every == 0 or it == st.iterations:
                    log.info("it %d/%d: seed %.4f expand %.4f constrain %.4f total %.4f lr %.2e", it,
                             st.iterations, *mean, lr)  # fmt: skip
            else:
                log.warning("iteration %d: no readable image in a batch, no step", it)
            if it % st.checkpoint_every == 0 or it == st.iterations:
                if dist.is_main():
                    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it}
                    io.save_checkpoint(out / "last.pt", {**state, "history": history, **meta,
                                                         "rng": torch.get_rng_state()})  # fmt: skip
                dist.barrier()
            t = time.perf_counter()
    ran = it - start
    windows = loss_windows(history, st.log_every)
    per_it = {key: v / ran for key, v in spent.items()} if ran else {}
    metrics = {"iterations": it, "images": len(indices), "grid": meta["grid"], "segmodel": cfg.segmodel.name,
               "final_losses": windows[-1] if windows else None,
               "seconds_per_iteration": per_it,  # of this invocation (a resumed run times its own iterations)
               "crf_share": spent["crf"] / max(1e-12, sum(spent.values())) if ran else None}  # fmt: skip
    if dist.is_main():
        io.save_checkpoint(out / "final.pt", {"model": model.state_dict(), "iteration": it, **meta})
        io.write_json(out / "history.json", history)
        plot_curves(out / "loss.png", windows, LOSSES, f"SEC losses ({cfg.segmodel.name}, {cfg.cam.name})")
        common.write_metrics(out, metrics)
        common.write_manifest(out, cfg, started, done=ran, iterations=it, seconds_per_iteration=per_it)
    dist.barrier()
    last = ", ".join(f"{k} {windows[-1][k]:.3f}" for k in LOSSES) if windows else "none"
    log.info("sec: %d iterations; losses of the last %d: %s -> %s", it, st.log_every, last, out / "final.pt")
    return metrics
