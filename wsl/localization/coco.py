"""Stored maps -> boxes in COCO's results format (what stage=boxes writes and COCOeval reads).

One record per box: ``{image_id, category_id, bbox, score}`` with the dataset's own category ids,
``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` in original image pixels (inclusive corners) and
``score = sigmoid(logit)`` of the class (the classifier is multi-label). Maps of images longer than
``max_side`` are boxed at that size and the boxes scaled to the original image (the memory guard).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsl.cam.stored import load_full
from wsl.errors import Failures
from wsl.localization.boxes import boxes_from_map
from wsl.progress import track


def scale_boxes(boxes: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """Inclusive (M, 4) ``x0 y0 x1 y1`` boxes on an (h, w) grid -> the pixels they cover on (H, W)."""
    if tuple(from_hw) == tuple(to_hw) or not len(boxes):
        return boxes
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    b = np.asarray(boxes, dtype=np.float64)
    out = np.stack(
        [np.floor(b[:, 0] * sx), np.floor(b[:, 1] * sy), np.ceil((b[:, 2] + 1) * sx) - 1,
         np.ceil((b[:, 3] + 1) * sy) - 1], axis=1
    )  # fmt: skip
    hi = np.array([to_hw[1], to_hw[0], to_hw[1], to_hw[0]]) - 1
    return np.clip(out, 0, hi).astype(np.int64)


def image_records(
    rec: dict[str, np.ndarray],
    image_id: int,
    category_ids: Sequence[int],
    threshold: float | None,
    method: str = "relative",
    mode: str = "largest",
) -> list[dict]:
    """COCO result records of one CAM file (``rec`` from :func:`wsl.cam.load_full`), every stored class,
    with boxes in the pixels of the original image (``image_size``) whatever size ``full`` is."""
    out = []
    size = tuple(int(v) for v in rec["image_size"])
    for c, full in zip(rec["classes"].tolist(), rec["full"]):
        score = 1.0 / (1.0 + math.exp(-float(rec["logits"][c])))
        boxes = scale_boxes(boxes_from_map(full, threshold, mode=mode, method=method), full.shape, size)
        for x0, y0, x1, y1 in boxes.tolist():
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
    failures: Failures = field(default_factory=Failures)  # damaged CAM files: id -> reason

    def merge(self, other: BoxRecords) -> BoxRecords:
        self.records += other.records
        self.failures.merge(other.failures)
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
    max_side: int | None = None,
) -> BoxRecords:
    """Boxes of the stored maps ``cams_dir/<id>.npz`` of the images ``indices`` of ``ds``; absent files
    are counted (``missing``), damaged ones skipped and recorded (``failures``)."""
    out = BoxRecords()
    for i in track(indices, desc):
        path = Path(cams_dir) / f"{ds.ids[i]}.npz"
        if not path.is_file():
            out.missing += 1
            continue
        try:
            rec = load_full(path, max_side, ds.num_classes)
        except OSError as e:  # BadItem: truncated, incomplete, inconsistent
            out.failures.add(ds.ids[i], e)
            continue
        recs = image_records(rec, ds.coco_image_id(i), ds.category_ids, threshold, method, mode)
        out.empty += int(not recs)
        out.records.extend(recs)
        out.done += 1
    return out
