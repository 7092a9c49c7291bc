"""stage=cams: maps for the labelled + top-k predicted classes of every image of a split.

Writes ``cams/<cam>/<split>/<id>.npz`` (:func:`wsl.io.save_cams`, made by :func:`wsl.cam.write_dataset_cams`)
and ``manifest.json`` with the counts, the speed and, where the split has masks, the CAM mIoU at the fixed
background threshold (IRN's protocol). Complete files are skipped on a re-run; under torchrun the images
are sharded across processes.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist, io
from wsl.cam import write_dataset_cams
from wsl.evaluation import evaluate_cam_masks
from wsl.stages import common

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed)
    split = common.split_name(cfg)
    out = common.layout(cfg).cams(cfg.cam.name, split)
    model = common.load_classifier(cfg, device)
    ds = common.build_dataset(cfg, split)
    mine, todo, skipped = common.pending(
        ds.ids,
        st.limit,
        st.overwrite,
        lambda i: io.is_complete_npz(out / f"{i}.npz"),
        "complete CAM files",
        out,
    )
    counts = write_dataset_cams(
        model,
        ds,
        todo,
        out,
        common.cam_settings(cfg),
        cfg.dataset.mean,
        cfg.dataset.std,
        device,
        cfg.num_workers,
        f"cams {cfg.cam.name} {split}",
    )
    done, failed, skipped, n_maps, slowest = dist.all_reduce_sum(
        [counts.done, counts.failed, skipped, counts.maps, counts.seconds]
    )
    metrics = {
        "images": int(done),
        "maps": int(n_maps),
        "images_per_s": done / slowest if slowest > 0 else None,
        "maps_per_s": n_maps / slowest if slowest > 0 else None,
    }
    if ds.has_masks:
        try:
            res = evaluate_cam_masks(ds, out, st.miou_threshold, [st.miou_threshold], mine, dist.merge_all)
            metrics.update(cam_miou=res.miou, cam_miou_threshold=st.miou_threshold)
        except ValueError as e:  # no file of this run could be scored (every image failed)
            log.warning("CAM mIoU not computed: %s", e)
    dist.barrier()
    common.write_manifest(
        out, cfg, started, done=int(done), skipped=int(skipped), failed=int(failed), **metrics
    )
    miou = (
        f", CAM mIoU {100 * metrics['cam_miou']:.1f} % at bg {st.miou_threshold}"
        if "cam_miou" in metrics
        else ""
    )
    log.info(
        "cams %s/%s: %d images done, %d skipped, %d failed; %.1f images/s%s -> %s",
        cfg.cam.name,
        split,
        done,
        skipped,
        failed,
        metrics["images_per_s"] or 0.0,
        miou,
        out,
    )
    return metrics
