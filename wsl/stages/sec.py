"""stage=sec: Seed, Expand and Constrain (Kolesnikov & Lampert, ECCV 2016) on ``seeds/<cam>/<split>/``.

Trains ``segmodel`` with SEC's three losses, weights 1:1:1 (``stage.weights``): seeding on the seeds
brought to the output grid, expansion with global weighted rank pooling (d+ 0.996, d- 0, d_bg 0.999 for
41 x 41, rescaled with :func:`~wsl.segmentation.decay_for_grid`), and constrain-to-boundary against a dense
CRF on the image downscaled to the grid (no gradient through Q). Probabilities carry SEC's 1e-4 floor.
SGD with momentum and SEC's Caffe multipliers (:func:`~wsl.models.deeplab.sec_param_groups`), lr x gamma
every ``lr_step`` iterations. Writes ``sec/<cam>/last.pt`` every ``checkpoint_every`` iterations (a re-run
resumes from it, dropout RNG included), ``final.pt``, ``history.json`` (the three losses per iteration),
``loss.png``, ``metrics.json``, ``manifest.json``. Under torchrun: DDP, each rank its share of every
batch (DistributedSampler's shuffle), rank 0 writes.

Where the time goes (``metrics.json`` -> ``seconds_per_iteration``, ``crf_share``): the network's forward
(with the seeding and expansion losses) and backward passes, and the batch's dense CRFs, which run on the
CPU between the two, one image per worker of a process pool (``crf_processes``). On a CPU the network
dominates; on a GPU the forward/backward shrinks to milliseconds and the CRFs (sec.md: 0.25 s for SEC's 15
images at 41 x 41 on 2 cores) become the larger share unless more worker processes share them.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from wsl import dist, io
from wsl.models.deeplab import sec_param_groups
from wsl.segmentation import CRFPool, decay_for_grid
from wsl.stages import UserError, common
from wsl.stages.sec_data import SECTrainSet, collate, schedule
from wsl.stages.sec_model import build_segmodel, grid_size, meta, sec_dir
from wsl.stages.sec_train import LOSSES, finish, resume, save_last, sec_losses, set_lr, sync

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed + dist.rank())
    split = common.split_name(cfg)
    seeds_dir = common.run_dir(cfg) / "seeds" / cfg.cam.name / split
    if not (seeds_dir / "manifest.json").is_file():
        raise UserError(f"no seeds at {seeds_dir}: run `python -m wsl.run stage=seeds stage.split={split}`")
    out = sec_dir(cfg)
    if (out / "final.pt").is_file() and not st.overwrite:
        if io.load_checkpoint(out / "final.pt").get("iteration", 0) >= st.iterations:
            log.info("SEC already trained (%s): nothing to do; stage.overwrite=true retrains", out)
            return io.read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    ds = common.build_dataset(cfg, split)
    indices = [i for i in range(len(ds)) if (seeds_dir / f"{ds.ids[i]}.png").is_file()]
    if len(indices) < len(ds):
        log.warning(
            "%d of %d images have no seeds in %s: left out", len(ds) - len(indices), len(ds), seeds_dir
        )
    model = build_segmodel(cfg).to(device)
    grid = grid_size(model, cfg.segmodel.input_size, device)
    info = meta(cfg, grid)
    decays = tuple(decay_for_grid(d, grid[0] * grid[1]) for d in (st.d_pos, st.d_neg, st.d_bg))
    opt = torch.optim.SGD(sec_param_groups(model, st.lr, st.weight_decay), lr=st.lr, momentum=st.momentum)
    start, history, rng = resume(out, model, opt, st.overwrite)
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
    it, net, stream = start, net.train(), iter(loader)  # the iterator draws from the torch RNG: restore after
    if rng is not None:
        torch.set_rng_state(rng)  # dropout continues as if the run had never stopped
    with CRFPool(st.crf_processes) as pool:
        t = time.perf_counter()
        for batch in common.progress(stream, f"sec {cfg.cam.name}", total=len(batches), unit="it"):
            t0 = sync(device)
            spent["data"] += t0 - t
            lr = set_lr(opt, st.lr, it, st.lr_step, st.lr_gamma)
            it += 1
            if dist.all_reduce_sum([float(batch is not None)])[0] < dist.world_size():  # all ranks agree
                log.warning("iteration %d: no readable image in a batch, no step", it)
                t = time.perf_counter()
                continue
            x = batch["x"].to(device, non_blocking=True)
            loss, crf_s = sec_losses(net(x), batch, pool, decays, st.weights, st.crf_iterations)
            t1 = sync(device)
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            opt.step()
            t = sync(device)
            spent["forward"] += t1 - t0 - crf_s
            spent["crf"] += crf_s
            spent["backward"] += t - t1
            values = dist.all_reduce_sum([loss[k].item() for k in LOSSES])  # the whole batch, all ranks
            history.append(
                {"iteration": it, "lr": lr, **{k: v / dist.world_size() for k, v in zip(LOSSES, values)}}
            )
            if it % st.log_every == 0 or it == st.iterations:
                log.info("it %d/%d: seed %.4f expand %.4f constrain %.4f total %.4f lr %.2e", it,
                         st.iterations, *(history[-1][k] for k in LOSSES), lr)  # fmt: skip
            if it % st.checkpoint_every == 0 or it == st.iterations:
                save_last(out, model, opt, it, history, info)
    return finish(cfg, out, model, history, spent, it - start, info, len(indices), started)
