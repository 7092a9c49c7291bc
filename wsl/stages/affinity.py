"""stage=affinity: IRN's inter-pixel relations learned from CAMs (Ahn, Cho & Kwak, CVPR 2019, Sec. 3.1-3.2).

1. Confident regions of every image of the split from its CAMs (labelled classes only): IRN's seed rule
   (background planes ``irn_fg`` 0.30 / ``irn_bg`` 0.05, each refined by the label CRF;
   :func:`wsl.segmentation.irn_confident_seeds`) -> ``affinity/<cam>/confident/<id>.png``; complete PNGs
   are kept on a re-run, images are sharded over torchrun ranks, unusable items skipped and counted.
2. A head on the trained classifier's frozen multi-level features (:class:`wsl.refine.AffinityNet`) trained
   on the inter-pixel labels of pairs within ``radius`` (:func:`wsl.refine.pair_labels`) with IRN's
   class-boundary loss (``loss=boundary``) or PSA's affinity loss on an embedding (``loss=affinity``):
   random rescale, flip and crop, SGD with a poly schedule on the head only (IRN).

Writes ``last.pt`` every ``checkpoint_every`` iterations (a re-run resumes from it), then ``final.pt``,
``history.json``, ``metrics.json``, ``manifest.json``. Under torchrun: DDP, each rank a part of every
global batch of one process, the loss normalised over the whole batch's pairs (so that any number of
processes trains as one does); rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from wsl import dist, io
from wsl.data.transforms import downscale
from wsl.errors import Failures, UserError
from wsl.evaluation import score_seeds
from wsl.progress import track
from wsl.refine import (
    LOSS_TERMS,
    AffinityNet,
    AffinityTrainSet,
    affinity_loss,
    collate,
    labelled_maps,
    set_sizes,
)
from wsl.segmentation import seed_job
from wsl.segmentation.segtrain import part_schedule
from wsl.stages import common

log = logging.getLogger(__name__)
OUTPUTS = ("final.pt", "history.json", "metrics.json", "manifest.json")
KIND = {"boundary": "boundary", "affinity": "embedding"}


def _confident(cfg: DictConfig, ds, todo: list[int], failures: Failures) -> int:
    """IRN's confident regions of the images ``todo`` -> PNGs; returns how many were written."""
    st, lay = cfg.stage, common.layout(cfg)
    cams, out = lay.cams(cfg.cam.name, common.split_name(cfg)), lay.affinity_labels(cfg.cam.name)
    rule = {"background": "irn", "irn_fg": st.irn_fg, "irn_bg": st.irn_bg}
    labels = ds.labels()

    def jobs_of(part: list[int]) -> tuple[list[int], list[tuple]]:
        kept, jobs = [], []
        for i in part:
            try:
                image = downscale(ds.load_image(i), cfg.dataset.max_side)
                rec = io.load_cams(cams / f"{ds.ids[i]}.npz", ds.num_classes)
                maps, keys = labelled_maps(rec, np.flatnonzero(labels[i] > 0), image.shape[:2])
            except (OSError, ValueError) as e:  # BadItem: the image or the CAM file
                failures.add(ds.ids[i], e)
                continue
            jobs.append((maps, keys, image, None, rule))
            kept.append(i)
        return kept, jobs

    return common.write_label_pngs(ds, todo, out, 4 * max(1, st.crf_processes), jobs_of, seed_job,
                                   st.crf_processes, "confident regions")  # fmt: skip


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed + dist.rank())
    lay = common.layout(cfg)
    out, conf_dir = lay.affinity(cfg.cam.name), lay.affinity_labels(cfg.cam.name)
    if all((out / name).is_file() for name in OUTPUTS) and not st.overwrite:
        if io.load_checkpoint(out / "final.pt").get("epochs") == st.epochs:
            log.info(
                "affinity network already trained (%s): nothing to do; stage.overwrite=true retrains", out
            )
            return io.read_json(out / "metrics.json")
    ds = common.build_dataset(cfg, common.split_name(cfg))
    _, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (conf_dir / f"{i}.png").is_file(), "confident regions", out
    )
    failures = Failures()
    made = _confident(cfg, ds, todo, failures)
    failures = common.settle_failures(cfg, failures, common.first_n(ds, st.limit))
    dist.barrier()
    indices = [i for i in range(common.first_n(ds, st.limit)) if (conf_dir / f"{ds.ids[i]}.png").is_file()]
    gt = common.dataset_with_masks(cfg, common.split_name(cfg))  # the regions' seed scores, where masks exist
    scores = score_seeds(gt, conf_dir, dist.shard(indices), dist.merge_all) if gt is not None else None
    world = dist.world_size()
    if st.batch_size < world:
        raise UserError(f"stage.batch_size={st.batch_size} cannot be shared by {world} processes")
    if len(indices) < st.batch_size:
        raise UserError(f"stage=affinity: {len(indices)} images with confident regions, fewer than one batch")
    model = AffinityNet(common.load_classifier(cfg, device).cpu(), KIND[st.loss], st.width, st.embed_dim)
    model = model.to(device)
    opt = torch.optim.SGD(
        model.head_parameters(), lr=st.lr, momentum=st.momentum, weight_decay=st.weight_decay
    )
    total = len(indices) // st.batch_size * st.epochs
    start, history, _ = common.resume(out, model, opt, st.overwrite, "the affinity training")
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    # The global batches of one process, each shared out among the ranks: 2 processes train as 1 does.
    parts = part_schedule(len(indices), st.batch_size, world, start, total, cfg.seed, dist.rank(), world)
    batches = [[(it, indices[k]) for it, k in part] for part in parts]
    train_set = AffinityTrainSet(ds, conf_dir, st.crop_size, st.scale_range, st.flip, st.radius,
                                 cfg.dataset.mean, cfg.dataset.std, cfg.seed)  # fmt: skip
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=cfg.num_workers, collate_fn=collate)
    log.info("affinity (%s): %s on %d images, radius %d, iterations %d..%d, batch %d over %d ranks", st.loss,
             cfg.model.name, len(indices), st.radius, start, total, st.batch_size, world)  # fmt: skip
    meta = {"kind": KIND[st.loss], "width": st.width, "embed_dim": st.embed_dim, "classifier": cfg.model.name,
            "cam": cfg.cam.name, "radius": st.radius, "epochs": st.epochs}  # fmt: skip
    it, net = start, net.train()
    for batch in track(iter(loader), f"affinity {cfg.cam.name}", total=len(batches), unit="it"):
        lr = st.lr * (1 - it / total) ** st.lr_power  # IRN's poly schedule
        for group in opt.param_groups:
            group["lr"] = lr
        it += 1
        # One collective: whether every rank has a batch, and the pair-set sizes of the global batch, which
        # normalise each rank's share of the loss; DDP averages gradients over ranks, hence x world.
        mine = set_sizes(batch["pairs"]) if batch is not None else [0.0] * 3
        ready, *sizes = dist.all_reduce_sum([float(batch is not None), *mine])
        if ready == world:
            aff = model.affinity(net(batch["x"].to(device)), st.radius)
            losses = affinity_loss(aff, batch["pairs"].to(device), sizes)
            opt.zero_grad(set_to_none=True)
            (losses["total"] * world).backward()
            opt.step()
            whole = dist.all_reduce_sum([float(losses[k].detach()) for k in LOSS_TERMS])  # the shares add up
            history.append({"iteration": it, "lr": lr, **dict(zip(LOSS_TERMS, whole))})
            if it % st.log_every == 0 or it == total:
                log.info("it %d/%d: bg+ %.4f fg+ %.4f neg %.4f total %.4f lr %.2e", it, total, *whole, lr)
        else:
            log.warning("iteration %d: no readable image in a batch, no step", it)
        if it % st.checkpoint_every == 0 or it == total:
            if dist.is_main():
                state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it}
                io.save_checkpoint(out / "last.pt", {**state, "history": history, **meta})
            dist.barrier()
    last = history[-st.log_every :]
    final = {k: float(np.mean([h[k] for h in last])) for k in LOSS_TERMS} if last else None
    metrics = {"iterations": it, "images": len(indices), "loss": st.loss, "final_losses": final,
               "confident_regions": {"written": made, "kept": skipped, "failed": len(failures)},
               "confident_seeds": asdict(scores) if scores is not None else None}  # fmt: skip
    if dist.is_main():
        io.save_checkpoint(out / "final.pt", {"model": model.state_dict(), "iteration": it, **meta})
        io.write_json(out / "history.json", history)
        common.write_metrics(out, metrics)
        common.write_manifest(out, cfg, started, done=it - start, iterations=it, failed=len(failures),
                              failed_items=failures.as_dict())  # fmt: skip
    dist.barrier()
    shown = ", ".join(f"{k} {v:.3f}" for k, v in final.items()) if final else "none"
    log.info("affinity: %d iterations; losses of the last %d: %s -> %s", it, st.log_every, shown,
             out / "final.pt")  # fmt: skip
    return metrics
