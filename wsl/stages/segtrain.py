"""stage=segtrain: the final segmentation network of the WSSS loop, trained on a refiner's pseudo-labels.

``stage.labels=sec`` reads stage=labels' ``labels/<cam>/<split>/``, ``randomwalk`` stage=randomwalk's
``randomwalk/<cam>/<split>/``. DeepLab's recipe (Chen et al., TPAMI 2018; shared/reference/wsss-loop.md
"The final network"): random scale, crop and flip, cross-entropy ignoring 255, SGD with momentum, the poly
learning rate and the last layer at x10 (:mod:`wsl.segmentation.segtrain`). Writes
``segtrain/<labels>/<cam>/last.pt`` every ``checkpoint_every`` iterations (a re-run resumes from it: the
batches, augmentations and dropout masks are functions of the iteration), ``final.pt``, ``history.json``,
``loss.png``, ``metrics.json`` and ``manifest.json``. Under torchrun: DDP, each process its share of the
``micro_batches`` of every global batch (the same gradient as one process; rank 0 writes).
``stage=eval stage.split=val stage.task=segmentation`` scores the network.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from wsl import dist, io
from wsl.errors import UserError
from wsl.models.deeplab import sec_param_groups
from wsl.progress import track
from wsl.segmentation.sec import grid_size
from wsl.segmentation.segtrain import (
    SegTrainSet,
    collate_parts,
    loss_windows,
    part_schedule,
    set_poly_lr,
    train_step,
)
from wsl.stages import common
from wsl.viz import plot_curves

log = logging.getLogger(__name__)
OUTPUTS = ("final.pt", "history.json", "loss.png", "metrics.json", "manifest.json")
MAKES = {"sec": "stage=labels", "randomwalk": "stage=randomwalk"}


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split, cam, refiner = common.split_name(cfg), cfg.cam.name, str(st.labels)
    lay = common.layout(cfg)
    labels_dir, out = lay.pseudo_labels(refiner, cam, split), lay.segtrain(refiner, cam)
    if not lay.manifest(labels_dir).is_file():
        raise UserError(f"stage=segtrain needs the pseudo-labels {labels_dir}: run `python -m wsl.run "
                        f"{MAKES[refiner]} cam={cam} stage.split={st.split}` first")  # fmt: skip
    if all((out / name).is_file() for name in OUTPUTS) and not st.overwrite:
        if io.load_checkpoint(out / "final.pt").get("iteration", 0) >= st.iterations:
            log.info("segtrain already trained (%s): nothing to do; stage.overwrite=true retrains", out)
            return io.read_json(out / "metrics.json")
    world = dist.world_size()
    parts = int(st.micro_batches or world)
    if parts % world or parts > st.batch_size:
        raise UserError(f"stage.micro_batches={parts}: must be a multiple of the {world} processes and at "
                        f"most stage.batch_size={st.batch_size}")  # fmt: skip
    ds = common.build_dataset(cfg, split)
    indices = [i for i in range(len(ds)) if (labels_dir / f"{ds.ids[i]}.png").is_file()]
    if len(indices) < st.batch_size:
        raise UserError(f"{len(indices)} images of {split} have pseudo-labels in {labels_dir}: fewer than "
                        f"one batch of stage.batch_size={st.batch_size}")  # fmt: skip
    if len(indices) < len(ds):
        log.warning("%d of %d images have no pseudo-label in %s: left out", len(ds) - len(indices), len(ds),
                    labels_dir)  # fmt: skip
    common.set_seed(cfg.seed)  # the same initial weights on every process
    model = common.build_segmodel(cfg).to(device)
    meta = {**common.segmodel_meta(cfg, grid_size(model, st.crop_size, device)), "labels": refiner}
    opt = torch.optim.SGD(sec_param_groups(model, st.lr, st.weight_decay), lr=st.lr, momentum=st.momentum)
    start, history, _ = common.resume(out, model, opt, st.overwrite, "segtrain")
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    train_set = SegTrainSet(ds, indices, labels_dir, st.crop_size, list(st.scale_range), st.flip,
                            cfg.dataset.mean, cfg.dataset.std, cfg.seed)  # fmt: skip
    batches = part_schedule(len(indices), st.batch_size, parts, start, st.iterations, cfg.seed, dist.rank(),
                            world)  # fmt: skip
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=cfg.num_workers,
                        collate_fn=collate_parts, pin_memory=device.type == "cuda")  # fmt: skip
    log.info("segtrain: %s on the %s pseudo-labels of %d images of %s, crop %d, scales %s, iterations "
             "%d..%d, batch %d in %d micro-batches over %d processes", cfg.segmodel.name, refiner,
             len(indices), split, st.crop_size, list(st.scale_range), start, st.iterations, st.batch_size,
             parts, world)  # fmt: skip
    mine = list(range(dist.rank(), parts, world))  # the part indices this process trains on
    it, net, stream, t_run = start, net.train(), iter(loader), time.perf_counter()
    for _ in track(range(start, st.iterations), f"segtrain {refiner} {cam}", unit="it"):
        chunk = [(p, next(stream)) for p in mine]
        lr = set_poly_lr(opt, st.lr, it, st.iterations, st.lr_power)
        if dist.all_reduce_sum([float(sum(b is None for _, b in chunk))])[0] == 0:  # all ranks agree
            loss_sum, valid = train_step(net, opt, chunk, it, cfg.seed, world, dist.all_reduce_sum, device)
            history.append({"iteration": it + 1, "lr": lr, "loss": loss_sum / max(valid, 1.0)})
            if (it + 1) % st.log_every == 0 or it + 1 == st.iterations:
                log.info("it %d/%d: loss %.4f lr %.2e", it + 1, st.iterations, history[-1]["loss"], lr)
        else:
            log.warning("iteration %d: an unreadable image in a micro-batch, no step", it + 1)
        it += 1
        if it % st.checkpoint_every == 0 or it == st.iterations:
            if dist.is_main():
                state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it}
                io.save_checkpoint(out / "last.pt", {**state, "history": history, **meta})
            dist.barrier()
    ran, seconds = it - start, time.perf_counter() - t_run
    windows = loss_windows(history, st.log_every)
    metrics = {"iterations": it, "images": len(indices), "labels": refiner, "labels_dir": str(labels_dir),
               "segmodel": cfg.segmodel.name, "micro_batches": parts, "processes": world,
               "final_loss": windows[-1]["loss"] if windows else None,
               "seconds_per_iteration": seconds / ran if ran else None}  # fmt: skip
    if dist.is_main():
        io.save_checkpoint(out / "final.pt", {"model": model.state_dict(), "iteration": it, **meta})
        io.write_json(out / "history.json", history)
        plot_curves(out / "loss.png", windows, ("loss",), f"segtrain loss ({cfg.segmodel.name}, {refiner})")
        common.write_metrics(out, metrics)
        common.write_manifest(out, cfg, started, done=ran, iterations=it)
    dist.barrier()
    last = f"{windows[-1]['loss']:.4f}" if windows else "none"
    log.info(
        "segtrain: %d iterations on the %s labels; last loss %s -> %s", it, refiner, last, out / "final.pt"
    )
    return metrics
