"""stage=boxes: every stored map -> box(es), written as ``boxes/<cam>/<split>/boxes.json``.

The file is in COCO's results format (:mod:`wsl.localization.coco`), so that
``pycocotools.cocoeval.COCOeval`` scores it directly against ``dataset.coco_gt()``: one box per
(image, class) for the classes stage=cams stored (the labelled and the top-k predicted ones). Under
torchrun each rank boxes its share of the images and rank 0 writes the merged, sorted file. Damaged CAM
files are skipped and counted (``failed_items``); more than ``stage.max_failed`` of the split is one error
line. Maps of images longer than ``dataset.max_side`` are boxed at that size, boxes reported at the
original size.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist, io
from wsl.layout import RunLayout
from wsl.localization import dataset_boxes
from wsl.stages import common

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    dist.init()
    split = common.split_name(cfg)
    lay = common.layout(cfg)
    cams, out = lay.cams(cfg.cam.name, split), lay.boxes_file(cfg.cam.name, split)
    if not st.overwrite and common.up_to_date(out.parent, cfg, RunLayout.manifest(cams)):
        old = io.read_json(RunLayout.manifest(out.parent))
        log.info("boxes %s/%s: %s is newer than the maps and made with these options: kept "
                 "(stage.overwrite=true redoes it)", cfg.cam.name, split, out)  # fmt: skip
        return {"images": old["counts"]["done"], "missing": old["counts"]["skipped"],
                "failed": old["counts"]["failed"], "boxes": old["boxes"]}  # fmt: skip
    ds = common.build_dataset(cfg, split)
    threshold = None if st.threshold_method == "otsu" else float(st.threshold)
    mine = dist.shard(list(range(len(ds))))
    part = dataset_boxes(ds, cams, mine, threshold, st.threshold_method, st.box_mode,
                         f"boxes {cfg.cam.name} {split}", cfg.dataset.max_side)  # fmt: skip
    boxes = dist.merge_all(part)
    boxes.failures.check(len(ds), float(st.max_failed), f"boxes {cfg.cam.name}/{split}")
    if dist.is_main():
        records = boxes.sorted_records()
        io.write_json(out, records, indent=None)
        if boxes.missing:
            log.warning("%d images of %s have no CAM file in %s: left out", boxes.missing, split, cams)
        common.write_manifest(
            out.parent,
            cfg,
            started,
            done=boxes.done,
            skipped=boxes.missing,
            failed=len(boxes.failures),
            failed_items=boxes.failures.as_dict(),
            boxes=len(records),
            maps_without_box=boxes.empty,
        )
        log.info(
            "boxes %s/%s: %d boxes from %d images -> %s", cfg.cam.name, split, len(records), boxes.done, out
        )
    dist.barrier()
    return {"images": boxes.done, "missing": boxes.missing, "failed": len(boxes.failures),
            "boxes": len(boxes.records)}  # fmt: skip
