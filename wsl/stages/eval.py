"""stage=eval: scores what the run produced against the dataset's annotations -> ``eval/<cam>/<split>/<task>/``.

``stage.task=localization``: every stored map against the GT boxes of its class
(:func:`wsl.evaluation.evaluate_localization`: Grad-CAM protocol top-1 / top-5 / GT-known and CorLoc,
pointing game, MaxBoxAcc V1/V2, PxAP where masks exist, COCO box AP of stage=boxes' file when present).
``segmentation``: CAM masks (IRN's protocol, fixed and tuned background threshold), and the seeds and
pseudo-labels of the run where they exist. ``all``: every task the dataset has annotations for. Under
torchrun each rank scores its share of the images and the accumulators are merged, so the figures equal a
single process's. Writes ``metrics.json`` (fractions), ``metrics.md``, plots and ``manifest.json``.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist
from wsl.errors import UserError
from wsl.evaluation import (LocalizationProtocol, SegmentationResult, evaluate_cam_masks, evaluate_localization,
                            save_localization, save_segmentation, score_labels, score_seeds,
                            sweep_thresholds)  # fmt: skip
from wsl.stages import common

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    dist.init()
    st = cfg.stage
    split, cam = common.split_name(cfg), cfg.cam.name
    lay = common.layout(cfg)
    cams = lay.cams(cam, split)
    ds = common.build_dataset(cfg, split)
    wanted = ["localization", "segmentation"] if st.task == "all" else [str(st.task)]
    mine = dist.shard(list(range(len(ds))))
    results = {}
    for task in wanted:
        started = time.time()
        if not (ds.has_boxes if task == "localization" else ds.has_masks):
            why = f"cannot evaluate {task} on {split}: the dataset has no {'boxes' if task == 'localization' else 'masks'}"
            if st.task != "all":
                raise UserError(why)
            log.info("skipping: %s", why)
            continue
        out = lay.eval(cam, split, task)
        if task == "localization":
            protocol = LocalizationProtocol(st.loc_threshold, st.iou_threshold, st.box_acc_step,
                                            st.pointing_tolerance)  # fmt: skip
            boxes = lay.boxes_file(cam, split)
            if not boxes.is_file():
                log.info("no %s: COCO box AP left out (run stage=boxes to get it)", boxes)
            res = evaluate_localization(ds, cams, boxes if boxes.is_file() else None, protocol, mine, dist.merge_all)
            if dist.is_main():
                save_localization(out, res, f"Localization, {cam} on {split}")
            log.info("localization %s/%s: GT-known %.1f %%, top-1 err %.1f %%, MaxBoxAccV2 %.1f %%, CorLoc %.1f %%%s "
                     "-> %s", cam, split, 100 * res.gt_known_loc, 100 * res.top1_loc_err, 100 * res.max_box_acc_v2,
                     100 * res.corloc, "" if res.coco_ap50 is None else f", COCO AP50 {100 * res.coco_ap50:.1f} %",
                     out)  # fmt: skip
            images = res.images
        else:
            thresholds = sweep_thresholds(st.sweep_start, st.sweep_stop, st.sweep_step)
            masks = evaluate_cam_masks(ds, cams, st.miou_threshold, thresholds, mine, dist.merge_all)
            if masks.images == 0:
                raise UserError(f"no CAM file of split {split!r} in {cams} could be scored")
            seeds, labels = lay.seeds(cam, split), lay.labels(cam, split)
            res = SegmentationResult(
                split=split, cam=cam, dataset_images=len(ds), cams=masks,
                seeds=score_seeds(ds, seeds, mine, dist.merge_all) if seeds.is_dir() else None,
                labels=score_labels(ds, labels, mine, dist.merge_all) if labels.is_dir() else None,
            )  # fmt: skip
            if dist.is_main():
                save_segmentation(out, res)
            extra = "".join(f"; {name} mIoU {100 * r.miou:.1f} %" for name, r in (("seeds", res.seeds),
                            ("pseudo-labels", res.labels)) if r is not None and r.miou is not None)  # fmt: skip
            log.info("segmentation %s/%s: CAM mIoU %.1f %% at bg %.2f, %.1f %% at bg %.2f (tuned on GT)%s -> %s",
                     cam, split, 100 * masks.miou, masks.threshold, 100 * masks.miou_tuned, masks.best_threshold,
                     extra, out)  # fmt: skip
            images = masks.images
        common.write_manifest(out, cfg, started, done=int(images))
        results[task] = res.to_json()
    if not results:
        raise UserError(f"nothing to evaluate for cam={cam} on {split}: the dataset has neither boxes nor masks")
    return results
