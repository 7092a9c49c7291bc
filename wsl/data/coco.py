"""COCO-format instance annotations (COCO 2014, and the toy dataset's COCO view), read with pycocotools.

Layout (paths relative to ``root`` unless absolute; ``{split}`` is replaced by the split name)::

    <root>/<image_dir>/<file_name>               e.g. train2014/COCO_train2014_000000000009.jpg
    <root>/<ann_file>                            e.g. annotations/instances_train2014.json

Conventions:

- Classes are the JSON's categories in increasing category id order: id ``category_ids[k]`` is class
  ``k`` (COCO's 80 ids in 1..90 become 0..79) and mask value ``k + 1``.
- Image ids (``ids``) are the file-name stems; images are ordered by their COCO image id.
- Image-level labels come from the non-crowd annotations only. An image without any (or with crowd
  annotations only) is kept with an all-zero label; stages skip such images where a class is needed.
- Semantic masks: non-crowd annotations are painted with ``annToMask`` in the JSON's order, so a later
  annotation overwrites an earlier one where they overlap; crowd regions are then set to 255 (void) over
  everything, since which pixels of a crowd belong to which object is unknown.
- Boxes: ``bbox = [x, y, w, h]`` (floats, pixel edges) becomes the inclusive pixel box
  ``x0 = floor(x), y0 = floor(y), x1 = ceil(x + w) - 1, y1 = ceil(y + h) - 1`` clipped to the image,
  i.e. every pixel the box touches; crowd boxes are left out; ``difficult`` is always False.

Checked when the split is loaded (README "Bad input"): an annotation whose ``category_id`` is not in
``categories`` or whose ``bbox`` is not ``[x, y, w, h]`` with ``w, h >= 0`` makes its image a bad item
(skipped and counted); a box reaching more than 1 px beyond ``images[].height/width`` is clipped (one
warning for the split). When an item is read: an image file whose size disagrees with
``images[].height/width``, and polygons of fewer than 3 points (masks only), make it a bad item.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsl import io
from wsl.data.base import (
    BoxClipper,
    WSLDataset,
    header_size,
    make_boxes,
    quiet_coco,
    require,
    require_split,
)

log = logging.getLogger(__name__)

COCO_LAYOUT = """\
  <root>/<image_dir>/<file_name>       (image_dir may contain {split}, e.g. {split}2014)
  <root>/<ann_file>                    (e.g. annotations/instances_{split}2014.json)"""


def bbox_to_inclusive(bbox: Sequence[float], hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """COCO ``[x, y, w, h]`` -> inclusive 0-based ``(x0, y0, x1, y1)`` of the pixels it touches, clipped."""
    x, y, w, h = (float(v) for v in bbox)
    x0 = min(max(math.floor(x), 0), hw[1] - 1)
    y0 = min(max(math.floor(y), 0), hw[0] - 1)
    x1 = min(max(math.ceil(x + w) - 1, x0), hw[1] - 1)
    y1 = min(max(math.ceil(y + h) - 1, y0), hw[0] - 1)
    return x0, y0, x1, y1


def _splits(root: Path, ann_file: str) -> list[str]:
    """The split names whose annotation file exists: ``ann_file``'s ``{split}`` matched against the disk."""
    head, _, tail = ann_file.partition("{split}")
    if not _:
        return []
    found = (root / head).parent.glob(Path(head).name + "*" + tail) if tail else []
    prefix, n = str(root / head), len(tail)
    return [str(p)[len(prefix) : len(str(p)) - n] for p in found if str(p).startswith(prefix)]


class COCODataset(WSLDataset):
    """One split of a COCO-format dataset; see the module docstring for the conventions.

    Args:
        root: dataset folder; ``ann_file`` and ``image_dir`` are relative to it (or absolute).
        split: the split name, substituted for ``{split}`` in ``ann_file`` and ``image_dir``.
        ann_file: the instances JSON.
        image_dir: the folder holding the images' ``file_name``.
        with_masks, with_boxes: add ``"mask"`` / boxes to samples.
        class_names: if given, must equal the JSON's category names in id order (a configuration check).
        min_side: images smaller than this on a side are bad items.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        ann_file: str,
        image_dir: str,
        with_masks: bool = False,
        with_boxes: bool = False,
        class_names: Sequence[str] | None = None,
        min_side: int = 1,
    ) -> None:
        super().__init__(split, with_masks, with_boxes, min_side)
        self.root = Path(root)
        require(self.root, "COCO root", COCO_LAYOUT)
        self.ann_file = require_split(self.root / ann_file.format(split=split), split,
                                      _splits(self.root, ann_file), COCO_LAYOUT)  # fmt: skip
        self.image_dir = require(self.root / image_dir.format(split=split), "COCO image folder", COCO_LAYOUT)
        log.info("loading %s", self.ann_file)
        self.coco = quiet_coco(ann_file=self.ann_file)
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        self.category_ids = [int(c["id"]) for c in cats]
        self.class_names = [str(c["name"]) for c in cats]
        if class_names is not None and list(class_names) != self.class_names:
            raise ValueError(
                f"{self.ann_file}: categories {self.class_names} differ from the configured "
                f"{list(class_names)}"
            )
        self._cat_index = {c: k for k, c in enumerate(self.category_ids)}
        self._image_ids = sorted(self.coco.getImgIds())
        infos = self.coco.loadImgs(self._image_ids)
        self._files = [str(info["file_name"]) for info in infos]
        # height/width absent: 0, read from the image header when needed
        self._sizes = [(int(info.get("height") or 0), int(info.get("width") or 0)) for info in infos]
        for f in self._files:  # a file name must not lead out of image_dir
            io.check_id(f, source=str(self.ann_file))
        self.ids = [Path(f).stem for f in self._files]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"{self.ann_file}: file-name stems are not unique, ids would collide")
        self.has_masks = self.has_boxes = True
        self._check_requests()
        self._build_labels()

    def _anns(self, i: int) -> list[dict]:
        return self.coco.imgToAnns.get(self._image_ids[i], [])

    def _build_labels(self) -> None:
        """Image-level labels and boxes of every image, checking each annotation (module docstring)."""
        self._labels = np.zeros((len(self.ids), len(self.category_ids)), dtype=np.float32)
        self._box_records = []
        clip = BoxClipper(self.ann_file, slack=1)
        for i in range(len(self.ids)):
            boxes, labels = [], []
            for a in self._anns(i):
                problem = self._annotation_problem(a)
                if problem:
                    self.problems.setdefault(i, f"{self.ann_file}: image {self._files[i]}: {problem}")
                    continue
                if a.get("iscrowd", 0):
                    continue
                k = self._cat_index[a["category_id"]]
                self._labels[i, k] = 1.0
                box = clip(self.ids[i], _raw_inclusive(a["bbox"]), self._sizes[i])
                if box is not None:
                    boxes.append(box)
                    labels.append(k)
            self._box_records.append(make_boxes(boxes, labels, [False] * len(boxes)))
        clip.report()

    def _annotation_problem(self, a: dict) -> str | None:
        """Why annotation ``a`` cannot describe its image, or None."""
        if a.get("category_id") not in self._cat_index:
            return f"annotation {a.get('id')} has category_id {a.get('category_id')!r}, not in categories"
        bbox = a.get("bbox")
        ok = (
            isinstance(bbox, list | tuple)
            and len(bbox) == 4
            and all(isinstance(v, int | float) for v in bbox)
        )
        if not ok or bbox[2] < 0 or bbox[3] < 0:
            return f"annotation {a.get('id')} has bbox {bbox!r}, not [x, y, w, h] with w, h >= 0"
        return None

    def labels(self) -> np.ndarray:
        return self._labels

    def image_size(self, i: int) -> tuple[int, int]:
        if min(self._sizes[i]) <= 0:
            self._sizes[i] = header_size(self.image_path(i))
        return self._sizes[i]

    def size_source(self, i: int) -> str:
        return f"{self.ann_file} images[].height/width"

    def coco_image_id(self, i: int) -> int:
        return int(self._image_ids[i])

    def coco_gt(self):
        """The real annotation file as a ``COCO`` object (crowd boxes stay in it; COCOeval ignores them)."""
        return self.coco

    def image_path(self, i: int) -> Path:
        return self.image_dir / self._files[i]

    def mask_source(self, i: int) -> str:
        return f"mask of {self._files[i]} from {self.ann_file}"

    def _mask(self, i: int) -> np.ndarray:
        h, w = self.image_size(i)
        mask = np.zeros((h, w), dtype=np.uint8)
        anns = [a for a in self._anns(i) if a.get("segmentation")]
        for a in anns:
            seg = a["segmentation"]
            if isinstance(seg, list) and any(len(p) < 6 or len(p) % 2 for p in seg):
                short = next(len(p) for p in seg if len(p) < 6 or len(p) % 2)
                raise ValueError(
                    f"annotation {a.get('id')}: a polygon of {short} coordinates (3 points or more)"
                )
        for a in anns:
            if not a.get("iscrowd", 0):
                mask[self._ann_mask(a, h, w)] = self._cat_index[a["category_id"]] + 1
        for a in anns:
            if a.get("iscrowd", 0):
                mask[self._ann_mask(a, h, w)] = 255
        return mask

    def _ann_mask(self, a: dict, h: int, w: int) -> np.ndarray:
        """The (H, W) bool mask of annotation ``a``; ValueError when it is of another size (an RLE)."""
        m = self.coco.annToMask(a)
        if m.shape != (h, w):
            raise ValueError(
                f"annotation {a.get('id')}: segmentation of {m.shape[0]}x{m.shape[1]}, image {h}x{w}"
            )
        return m.astype(bool)

    def _boxes(self, i: int) -> dict[str, np.ndarray]:
        return self._box_records[i]


def _raw_inclusive(bbox: Sequence[float]) -> tuple[int, int, int, int]:
    """COCO ``[x, y, w, h]`` -> inclusive ``(x0, y0, x1, y1)`` of the pixels it touches, not clipped."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = math.floor(x), math.floor(y)
    return x0, y0, max(math.ceil(x + w) - 1, x0), max(math.ceil(y + h) - 1, y0)
