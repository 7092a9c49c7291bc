"""stage=eval: what the run produced against the dataset's annotations -> ``eval/<cam>/<split>/<task>/``.

``stage.task=localization``: every stored map against the GT boxes of its class
(:func:`wsl.evaluation.evaluate_localization`: Grad-CAM protocol top-1 / top-5 / GT-known and CorLoc,
pointing game, MaxBoxAcc V1/V2, PxAP where masks exist, COCO box AP of stage=boxes' file when present).
``segmentation``: CAM masks (IRN's protocol, fixed and tuned background threshold), and the seeds and
pseudo-labels of the run where they exist (:func:`wsl.evaluation.evaluate_segmentation`). ``all``: every
task the dataset has annotations for. Under torchrun each rank scores its share of the images and the
accumulators are merged, so the figures equal a single process's. Writes ``metrics.json`` (fractions),
``metrics.md``, plots and ``manifest.json``. Items that cannot be scored (a damaged CAM file, a mask of the
wrong size or with values that are no class, an unusable annotation) are skipped and counted
(``failed_items``); more than ``stage.max_failed`` of the split is one error line.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist
from wsl.errors import Failures, UserError
from wsl.evaluation import (
    LocalizationProtocol,
    MissingMapError,
    evaluate_localization,
    evaluate_segmentation,
    save_localization,
    save_segmentation,
    summary,
    sweep_thresholds,
)
from wsl.stages import common

log = logging.getLogger(__name__)


def _localization(cfg: DictConfig, ds, mine: list[int]):
    st, cam, split, lay = cfg.stage, cfg.cam.name, common.split_name(cfg), common.layout(cfg)
    protocol = LocalizationProtocol(
        st.loc_threshold, st.iou_threshold, st.box_acc_step, st.pointing_tolerance
    )
    boxes = lay.boxes_file(cam, split)
    if not boxes.is_file():
        log.info("no %s: COCO box AP left out (run stage=boxes to get it)", boxes)
        boxes = None
    try:
        res = evaluate_localization(ds, lay.cams(cam, split), boxes, protocol, mine, dist.merge_all)
    except MissingMapError as e:  # the maps were made for other labels
        raise UserError(f"{e} (stage.overwrite=true)") from None
    Failures(res.failed_items).check(len(ds), float(st.max_failed), f"eval localization {cam}/{split}")
    if dist.is_main():
        save_localization(lay.eval(cam, split, "localization"), res, f"Localization, {cam} on {split}")
    return res, res.images


def _segmentation(cfg: DictConfig, ds, mine: list[int]):
    st, cam, split, lay = cfg.stage, cfg.cam.name, common.split_name(cfg), common.layout(cfg)
    thresholds = sweep_thresholds(st.sweep_start, st.sweep_stop, st.sweep_step)
    folders = lay.cams(cam, split), lay.seeds(cam, split), lay.labels(cam, split)
    try:
        res = evaluate_segmentation(ds, *folders, cam, st.miou_threshold, thresholds, mine, dist.merge_all)
    except ValueError as e:  # no CAM file could be scored
        raise UserError(f"cannot evaluate the segmentation of {folders[0]}: {e}") from None
    bad = Failures(res.cams.failed_items)
    for part in (res.seeds, res.labels):
        bad.merge(Failures(part.failed_items if part is not None else {}))
    bad.check(len(ds), float(st.max_failed), f"eval segmentation {cam}/{split}")
    if dist.is_main():
        save_segmentation(lay.eval(cam, split, "segmentation"), res)
    return res, res.cams.images


def run(cfg: DictConfig) -> dict:
    dist.init()
    st = cfg.stage
    split, cam = common.split_name(cfg), cfg.cam.name
    ds = common.build_dataset(cfg, split)
    mine = dist.shard(list(range(len(ds))))
    results = {}
    for task in ["localization", "segmentation"] if st.task == "all" else [str(st.task)]:
        started = time.time()
        if not (ds.has_boxes if task == "localization" else ds.has_masks):
            why = f"cannot evaluate {task} on {split}: dataset={cfg.dataset.name} has no annotations for it"
            if st.task != "all":
                raise UserError(why)
            log.info("skipping: %s", why)
            continue
        res, images = (_localization if task == "localization" else _segmentation)(cfg, ds, mine)
        out = common.layout(cfg).eval(cam, split, task)
        failed = res.failed_items if task == "localization" else res.cams.failed_items
        common.write_manifest(out, cfg, started, done=int(images), failed=len(failed), failed_items=failed)
        log.info("%s %s/%s: %s -> %s", task, cam, split, summary(res), out)
        results[task] = res.to_json()
    if not results:
        raise UserError(
            f"nothing to evaluate on {split}: dataset={cfg.dataset.name} has neither boxes nor masks"
        )
    return results
