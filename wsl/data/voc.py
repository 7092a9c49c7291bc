"""PASCAL VOC 2012 (and anything written in its layout, such as the toy dataset).

Layout (``root`` is the ``VOCdevkit/VOC2012`` folder)::

    JPEGImages/<id>.jpg
    Annotations/<id>.xml                         objects: name, difficult, bndbox (1-based, inclusive)
    SegmentationClass/<id>.png                   palette PNG, 0 background, 1..C classes, 255 void
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageSets/SegmentationAug/train_aug.txt      optional: IRN's 10,582 train_aug ids, one id per line
    SegmentationClassAug/<id>.png                optional: SBD-augmented masks (``aug_root``)

A split ``s`` reads ``ImageSets/Segmentation/s.txt``, else ``ImageSets/SegmentationAug/s.txt``. List files
hold plain ids (DeepLab-style lines of paths are rejected: keep the stems). Image-level labels come from
every ``<name>`` in the XML, difficult objects included; boxes keep the ``difficult`` flag. A mask is read
from ``SegmentationClass`` when it holds the id, else from ``aug_root``. All annotations are parsed when the
dataset is built; a missing image file is not checked there but reported per sample (skipped and counted).
A malformed XML or an inverted box makes its item a bad item (skipped and counted); boxes beyond the
XML's ``<size>`` are clipped to it (one warning for the split); an XML whose ``<size>`` disagrees with its
image makes the image a bad item when it is read.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsl import io
from wsl.data.base import (
    BoxClipper,
    DatasetNotFoundError,
    WSLDataset,
    header_size,
    make_boxes,
    require,
    require_split,
)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

VOC_LAYOUT = """\
  <root> = VOCdevkit/VOC2012/
    JPEGImages/<id>.jpg
    Annotations/<id>.xml
    SegmentationClass/<id>.png                  (masks)
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageSets/SegmentationAug/train_aug.txt     (optional, with SegmentationClassAug/<id>.png)"""


class VOCDataset(WSLDataset):
    """One split of a VOC-layout dataset; see the module docstring for the layout.

    Args:
        root: the ``VOCdevkit/VOC2012`` folder.
        split: a list name (``train``, ``val``, ``trainval``, ``train_aug``...).
        with_masks: add ``"mask"`` to samples (every id must have a mask file).
        with_boxes: add ``"boxes"``, ``"box_labels"``, ``"box_difficult"`` to samples.
        class_names: the classes in index order (default: VOC's 20, alphabetical); every XML name must
            be one of them.
        aug_root: folder of SegmentationClassAug masks (default ``root/SegmentationClassAug``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        with_masks: bool = False,
        with_boxes: bool = False,
        class_names: Sequence[str] | None = None,
        aug_root: str | os.PathLike | None = None,
        min_side: int = 1,
    ) -> None:
        super().__init__(split, with_masks, with_boxes, min_side)
        self.root = Path(root)
        self.class_names = list(class_names) if class_names is not None else list(VOC_CLASSES)
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self.aug_root = Path(aug_root) if aug_root is not None else self.root / "SegmentationClassAug"
        require(self.root, "VOC root", VOC_LAYOUT)
        for sub in ("JPEGImages", "Annotations"):
            require(self.root / sub, f"VOC {sub} folder", VOC_LAYOUT)
        self.ids = io.read_id_list(self._list_file(split))
        self._parse_annotations()
        self.has_boxes = True
        self.has_masks = (self.root / "SegmentationClass").is_dir() or self.aug_root.is_dir()
        self._check_requests()
        if self.with_masks:
            self._check_masks()

    def _list_file(self, split: str) -> Path:
        sets = self.root / "ImageSets"
        for sub in ("Segmentation", "SegmentationAug"):
            if (sets / sub / f"{split}.txt").is_file():
                return sets / sub / f"{split}.txt"
        listed = [p.stem for sub in ("Segmentation", "SegmentationAug") for p in (sets / sub).glob("*.txt")]
        return require_split(sets / "Segmentation" / f"{split}.txt", split, listed, VOC_LAYOUT)

    def _parse_annotations(self) -> None:
        index = {n: k for k, n in enumerate(self.class_names)}
        self._labels = np.zeros((len(self.ids), len(self.class_names)), dtype=np.float32)
        self._sizes: list[tuple[int, int]] = []
        self._box_records: list[dict[str, np.ndarray]] = []
        clip = BoxClipper(self.root / "Annotations")
        for i, image_id in enumerate(self.ids):
            path = require(self.root / "Annotations" / f"{image_id}.xml", "VOC annotation", VOC_LAYOUT)
            try:
                ann = io.read_voc_xml(path)
            except (ET.ParseError, ValueError, AttributeError, TypeError) as e:
                self.problems[i] = f"{path}: malformed VOC annotation ({' '.join(str(e).split())})"
                ann = {"size": (0, 0), "objects": []}
            unknown = sorted({o["name"] for o in ann["objects"]} - index.keys())
            if unknown:
                raise ValueError(f"{path}: unknown class names {unknown}; classes are {self.class_names}")
            objects = self._boxed_objects(i, path, ann, clip)
            self._labels[i, [index[o["name"]] for o in ann["objects"]]] = 1.0  # difficult ones included
            self._sizes.append(tuple(ann["size"]))
            self._box_records.append(
                make_boxes(
                    [o["bbox"] for o in objects],
                    [index[o["name"]] for o in objects],
                    [o["difficult"] for o in objects],
                )
            )
        clip.report()

    def _boxed_objects(self, i: int, path: Path, ann: dict, clip: BoxClipper) -> list[dict]:
        """The objects of image ``i`` with their boxes clipped to the XML's size (those entirely outside
        dropped); none when a box is inverted, which makes the item a bad one."""
        inverted = [
            o["bbox"] for o in ann["objects"] if o["bbox"][2] < o["bbox"][0] or o["bbox"][3] < o["bbox"][1]
        ]
        if inverted:
            self.problems[i] = f"{path}: inverted box {list(inverted[0])} (xmax < xmin or ymax < ymin)"
            return []
        clipped = [{**o, "bbox": clip(self.ids[i], o["bbox"], ann["size"])} for o in ann["objects"]]
        return [o for o in clipped if o["bbox"] is not None]

    def _mask_path(self, i: int) -> Path:
        own = self.root / "SegmentationClass" / f"{self.ids[i]}.png"
        return own if own.is_file() else self.aug_root / f"{self.ids[i]}.png"

    def _check_masks(self) -> None:
        missing = [self.ids[i] for i in range(len(self.ids)) if not self._mask_path(i).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} of {len(self.ids)} ids of split {self.split!r} have no mask in "
                f"{self.root / 'SegmentationClass'} or {self.aug_root} (first: {missing[:3]})\n"
                f"Expected layout:\n{VOC_LAYOUT}"
            )

    def labels(self) -> np.ndarray:
        return self._labels

    def image_size(self, i: int) -> tuple[int, int]:
        h, w = self._sizes[i]
        if h <= 0 or w <= 0:  # a few XMLs lack <size>: read the image header (cheap, no decoding)
            h, w = self._sizes[i] = header_size(self.image_path(i))
        return h, w

    def size_source(self, i: int) -> str:
        return f"{self.root / 'Annotations' / (self.ids[i] + '.xml')} <size>"

    def image_path(self, i: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[i]}.jpg"

    def mask_source(self, i: int) -> str:
        return f"mask {self._mask_path(i)}"

    def _mask(self, i: int) -> np.ndarray:
        return io.read_label_png(self._mask_path(i))

    def _boxes(self, i: int) -> dict[str, np.ndarray]:
        return self._box_records[i]
