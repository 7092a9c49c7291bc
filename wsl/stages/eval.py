"""stage=eval: scores what the run produced against the dataset's annotations.

``stage.task=localization`` (boxes: Grad-CAM protocol, MaxBoxAcc V1/V2, CorLoc, pointing game, COCO AP),
``segmentation`` (CAM masks, seeds, pseudo-labels: mIoU), or ``all``: every task whose inputs exist in the
run and whose annotations the dataset has. Each writes ``eval/<cam>/<split>/<task>/``.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist
from wsl.stages import UserError, common
from wsl.stages.camfiles import cams_dir

log = logging.getLogger(__name__)


def eval_dir(cfg: DictConfig, split: str, task: str):
    return common.run_dir(cfg) / "eval" / cfg.cam.name / split / task


def run(cfg: DictConfig) -> dict:
    dist.init()
    split = common.split_name(cfg)
    task = cfg.stage.task
    ds = common.build_dataset(cfg, split)
    has_cams = (cams_dir(cfg, split) / "manifest.json").is_file()
    wanted = ["localization", "segmentation"] if task == "all" else [task]
    results = {}
    for t in wanted:
        started = time.time()
        ok_data = ds.has_boxes if t == "localization" else ds.has_masks
        if not ok_data or not has_cams:
            why = (
                f"the dataset has no {'boxes' if t == 'localization' else 'masks'}"
                if not ok_data
                else (f"no CAMs in {cams_dir(cfg, split)} (run stage=cams first)")
            )
            if task != "all":
                raise UserError(f"cannot evaluate {t} on {split}: {why}")
            log.info("skipping %s evaluation: %s", t, why)
            continue
        out = eval_dir(cfg, split, t)
        if t == "localization":
            from wsl.stages.eval_localization import evaluate_localization

            results[t] = evaluate_localization(cfg, split, out, ds)
        else:
            from wsl.stages.eval_segmentation import evaluate_segmentation

            results[t] = evaluate_segmentation(cfg, split, out, ds)
        common.write_manifest(out, cfg, started, done=int(results[t].get("images", 0)))
    if not results:
        raise UserError(f"nothing to evaluate for cam={cfg.cam.name} on {split}: run stage=cams first")
    return results
