"""Stored maps -> boxes in COCO's results format (what stage=boxes writes and COCOeval reads).

One record per box: ``{image_id, category_id, bbox, score}`` with the dataset's own category ids,
``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` in original image pixels (inclusive corners) and
``score = sigmoid(logit)`` of the class (the classifier is multi-label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsl.cam.stored import load_full
from wsl.localization.boxes import boxes_from_map
from wsl.progress import track


def image_records(
    rec: dict[str, np.ndarray],
    image_id: int,
    category_ids: Sequence[int],
    threshold: float | None,
    method: str = "relative",
    mode: str = "largest",
) -> list[dict]:
    """COCO result records of one CAM file (``rec`` from :func:`wsl.cam.load_full`), every stored class."""
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


@dataclass
class BoxRecords:
    """The records of some images and what happened to them; ``merge`` joins the parts of several ranks."""

    records: list[dict] = field(default_factory=list)
    done: int = 0
    missing: int = 0
    empty: int = 0  # images whose maps gave no box at all

    def merge(self, other: BoxRecords) -> BoxRecords:
        self.records += other.records
        self.done, self.missing, self.empty = (
            self.done + other.done,
            self.missing + other.missing,
            self.empty + other.empty,
        )
        return self

    def sorted_records(self) -> list[dict]:
        """Records in a deterministic order, whatever the sharding."""
        return sorted(self.records, key=lambda d: (d["image_id"], d["category_id"], -d["score"], d["bbox"]))


def dataset_boxes(
    ds,
    cams_dir: Path,
    indices: Sequence[int],
    threshold: float | None = 0.15,
    method: str = "relative",
    mode: str = "largest",
    desc: str = "boxes",
) -> BoxRecords:
    """Boxes of the stored maps ``cams_dir/<id>.npz`` of the images ``indices`` of ``ds``."""
    out = BoxRecords()
    for i in track(indices, desc):
        path = Path(cams_dir) / f"{ds.ids[i]}.npz"
        if not path.is_file():
            out.missing += 1
            continue
        recs = image_records(load_full(path), ds.coco_image_id(i), ds.category_ids, threshold, method, mode)
        out.empty += int(not recs)
        out.records.extend(recs)
        out.done += 1
    return out
