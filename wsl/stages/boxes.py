"""stage=boxes: every stored map -> box(es), written as ``boxes/<cam>/<split>/boxes.json``.

The file is in COCO's results format (``[{image_id, category_id, bbox, score}]``) so that
``pycocotools.cocoeval.COCOeval`` scores it directly against ``dataset.coco_gt()``: one box per
(image, class) for the classes stage=cams stored (the labelled and the top-k predicted ones), score =
sigmoid(logit), the dataset's own category ids, ``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` in original
image pixels (inclusive corners). Under torchrun each rank writes its part; rank 0 merges them.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from wsl import dist, io
from wsl.localization import boxes_from_map
from wsl.stages import common
from wsl.stages.camfiles import load_full, require_cams

log = logging.getLogger(__name__)


def boxes_dir(cfg: DictConfig, split: str) -> Path:
    return common.run_dir(cfg) / "boxes" / cfg.cam.name / split


def image_records(
    rec: dict[str, np.ndarray],
    image_id: int,
    category_ids: list[int],
    threshold: float | None,
    method: str,
    mode: str,
) -> list[dict]:
    """COCO result records of one CAM file (``rec`` from :func:`load_full`)."""
    out = []
    for c, full in zip(rec["classes"].tolist(), rec["full"]):
        score = 1.0 / (1.0 + math.exp(-float(rec["logits"][c])))
        for x0, y0, x1, y1 in boxes_from_map(full, threshold, mode=mode, method=method).tolist():
            out.append(
                {
                    "image_id": image_id,
                    "category_id": int(category_ids[c]),
                    "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                    "score": round(score, 6),
                }
            )
    return out


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    dist.init()
    split = common.split_name(cfg)
    cams = require_cams(cfg, split)
    out = boxes_dir(cfg, split)
    ds = common.build_dataset(cfg, split)
    threshold = None if st.threshold_method == "otsu" else float(st.threshold)
    records: list[dict] = []
    done = missing = empty = 0
    for i in common.progress(dist.shard(range(len(ds))), f"boxes {cfg.cam.name} {split}"):
        path = cams / f"{ds.ids[i]}.npz"
        if not path.is_file():
            missing += 1
            continue
        recs = image_records(
            load_full(path), ds.coco_image_id(i), ds.category_ids, threshold, st.threshold_method, st.box_mode
        )
        empty += int(not recs)
        records.extend(recs)
        done += 1
    part = out / f"boxes.part{dist.rank()}.json"
    io.write_json(part, records, indent=None)
    dist.barrier()
    done, missing, empty = (int(v) for v in dist.all_reduce_sum([done, missing, empty]))
    if dist.is_main():
        merged = []
        for r in range(dist.world_size()):
            p = out / f"boxes.part{r}.json"
            merged.extend(io.read_json(p))
            p.unlink()
        merged.sort(key=lambda d: (d["image_id"], d["category_id"], -d["score"]))
        io.write_json(out / "boxes.json", merged, indent=None)
        if missing:
            log.warning("%d images of %s have no CAM file in %s: left out", missing, split, cams)
        common.write_manifest(
            out, cfg, started, done=done, skipped=missing, failed=0, boxes=len(merged), maps_without_box=empty
        )
        log.info(
            "boxes %s/%s: %d boxes from %d images -> %s",
            cfg.cam.name,
            split,
            len(merged),
            done,
            out / "boxes.json",
        )
    return {"images": done, "missing": missing}
