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
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsl import io
from wsl.data.base import WSLDataset, make_boxes, quiet_coco, read_image_checked, require

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


class COCODataset(WSLDataset):
    """One split of a COCO-format dataset; see the module docstring for the conventions.

    Args:
        root: dataset folder; ``ann_file`` and ``image_dir`` are relative to it (or absolute).
        split: the split name, substituted for ``{split}`` in ``ann_file`` and ``image_dir``.
        ann_file: the instances JSON.
        image_dir: the folder holding the images' ``file_name``.
        with_masks, with_boxes: add ``"mask"`` / boxes to samples.
        class_names: if given, must equal the JSON's category names in id order (a configuration check).
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
    ) -> None:
        super().__init__(split, with_masks, with_boxes)
        self.root = Path(root)
        require(self.root, "COCO root", COCO_LAYOUT)
        self.ann_file = require(self.root / ann_file.format(split=split), "COCO annotation file", COCO_LAYOUT)
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
        self._sizes = [(int(info["height"]), int(info["width"])) for info in infos]
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
        self._labels = np.zeros((len(self.ids), len(self.category_ids)), dtype=np.float32)
        for i in range(len(self.ids)):
            for a in self._anns(i):
                if not a.get("iscrowd", 0):
                    self._labels[i, self._cat_index[a["category_id"]]] = 1.0

    def labels(self) -> np.ndarray:
        return self._labels

    def image_size(self, i: int) -> tuple[int, int]:
        return self._sizes[i]

    def coco_image_id(self, i: int) -> int:
        return int(self._image_ids[i])

    def coco_gt(self):
        """The real annotation file as a ``COCO`` object (crowd boxes stay in it; COCOeval ignores them)."""
        return self.coco

    def load_image(self, i: int) -> np.ndarray:
        return read_image_checked(self.image_dir / self._files[i])

    def load_mask(self, i: int) -> np.ndarray:
        h, w = self._sizes[i]
        mask = np.zeros((h, w), dtype=np.uint8)
        anns = [a for a in self._anns(i) if a.get("segmentation")]
        for a in anns:
            if not a.get("iscrowd", 0):
                mask[self.coco.annToMask(a).astype(bool)] = self._cat_index[a["category_id"]] + 1
        for a in anns:
            if a.get("iscrowd", 0):
                mask[self.coco.annToMask(a).astype(bool)] = 255
        return mask

    def load_boxes(self, i: int) -> dict[str, np.ndarray]:
        anns = [a for a in self._anns(i) if not a.get("iscrowd", 0)]
        return make_boxes(
            [bbox_to_inclusive(a["bbox"], self._sizes[i]) for a in anns],
            [self._cat_index[a["category_id"]] for a in anns],
            [False] * len(anns),
        )
