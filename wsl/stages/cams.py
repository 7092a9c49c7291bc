"""stage=cams: maps for the labelled + top-k predicted classes of every image of a split.

Writes ``cams/<cam>/<split>/<id>.npz`` (:func:`wsl.io.save_cams`, made by :func:`wsl.cam.write_dataset_cams`)
and ``manifest.json`` with the counts, the speed and, where the split has masks, the CAM mIoU at the fixed
background threshold (IRN's protocol). Complete files (:func:`wsl.io.check_cams`: readable, every array,
consistent shapes, finite values) are skipped on a re-run and damaged ones made again; under torchrun the
images are sharded across processes. Unusable images are skipped and counted (``failed_items`` in the
manifest); more than ``stage.max_failed`` of the split is one error line. Images longer than
``dataset.max_side`` are downscaled for the model, their maps stored for the original size.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist, io
from wsl.cam import write_dataset_cams
from wsl.errors import BadItem
from wsl.evaluation import evaluate_cam_masks
from wsl.layout import RunLayout
from wsl.stages import common

log = logging.getLogger(__name__)


def _complete(folder, num_classes: int):
    """``is_done(image_id)`` for :func:`common.pending`: a damaged file is named and made again."""

    def is_done(image_id: str) -> bool:
        path = folder / f"{image_id}.npz"
        if not path.is_file():
            return False
        try:
            io.check_cams(path, num_classes)
        except BadItem as e:
            log.warning("%s: made again", e)
            return False
        return True

    return is_done


def _previous_miou(out, st) -> dict:
    """The CAM mIoU of the previous run of this folder, when it was taken over the same images."""
    try:
        old = io.read_json(RunLayout.manifest(out))
    except (OSError, ValueError):
        return {}
    same = old.get("cam_miou_threshold") == st.miou_threshold and old["config"]["stage"]["limit"] == st.limit
    return {k: old[k] for k in ("cam_miou", "cam_miou_threshold")} if same and "cam_miou" in old else {}


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
    is_done = _complete(out, int(cfg.dataset.num_classes))
    mine, todo, skipped = common.pending(ds.ids, st.limit, st.overwrite, is_done, "complete CAM files", out)
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
        cfg.dataset.max_side,
    )
    failures = common.settle_failures(cfg, counts.failures, common.first_n(ds, st.limit))
    done, skipped, n_maps, slowest = dist.all_reduce_sum([counts.done, skipped, counts.maps, counts.seconds])
    failed = len(failures)
    metrics = {
        "images": int(done),
        "maps": int(n_maps),
        "images_per_s": done / slowest if slowest > 0 else None,
        "maps_per_s": n_maps / slowest if slowest > 0 else None,
    }
    reused = _previous_miou(out, st) if not done and not failed else {}
    if reused:  # a re-run that wrote nothing scores nothing new: it stays cheap
        metrics.update(reused)
    elif ds.has_masks:
        try:
            res = evaluate_cam_masks(ds, out, st.miou_threshold, [st.miou_threshold], mine, dist.merge_all)
            metrics.update(cam_miou=res.miou, cam_miou_threshold=st.miou_threshold)
        except ValueError as e:  # no file of this run could be scored (every image failed)
            log.warning("CAM mIoU not computed: %s", e)
    dist.barrier()
    common.write_manifest(out, cfg, started, done=int(done), skipped=int(skipped), failed=failed,
                          failed_items=failures.as_dict(), **metrics)  # fmt: skip
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
