"""A folder of the user's own images with image-level labels in a CSV file.

Layout::

    <root>/images/<id>.jpg|.jpeg|.png      the images (the id is the file stem; one file per id)
    <root>/labels.csv                      header ``id,labels``; ``labels`` is a ``;``-separated list of
                                           class names, empty for an image without any object
    <root>/classes.txt                     optional: one class name per line, in class-index order;
                                           otherwise the sorted union of the names in labels.csv
    <root>/splits/<split>.txt              optional: the ids of each split, one per line; without a
                                           ``splits/`` folder every split is every id of labels.csv
    <root>/masks/<id>.png                  optional: palette or single-channel PNG, 0 background,
                                           k + 1 for the k-th class, 255 void
    <root>/boxes.csv                       optional: header ``id,class,x0,y0,x1,y1[,difficult]``, pixel
                                           boxes 0-based and inclusive, ``difficult`` 0/1

Example ``labels.csv``::

    id,labels
    cat_001,cat
    walk_07,dog;person
    empty_3,

Only the ids listed in labels.csv are used (other images in ``images/`` are ignored). Category ids are
``1..C`` in class order. Image sizes come from the image headers (EXIF orientation applied). A box of
``boxes.csv`` that reaches beyond its image is clipped to it (one warning for the split); an inverted box
(``x1 < x0``) makes its image a bad item (skipped and counted, README "Bad input").
"""

from __future__ import annotations

import csv
import logging
import os
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
from wsl.errors import BadItem

log = logging.getLogger(__name__)

FOLDER_LAYOUT = """\
  <root>/images/<id>.jpg|.jpeg|.png
  <root>/labels.csv            header id,labels  (labels: class names separated by ';')
  <root>/classes.txt           (optional) one class name per line
  <root>/splits/<split>.txt    (optional) ids of each split
  <root>/masks/<id>.png        (optional) class-index PNGs
  <root>/boxes.csv             (optional) header id,class,x0,y0,x1,y1[,difficult], 0-based inclusive"""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: tolerate the BOM of spreadsheet exports
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if any(r not in header for r in required):
            raise ValueError(f"{path}: header must start with {','.join(required)}, got {header}")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


class FolderDataset(WSLDataset):
    """The user's own images; see the module docstring for the layout (copied into the README).

    Args:
        root: the dataset folder.
        split: a name in ``splits/`` (any name when there is no ``splits/`` folder).
        with_masks, with_boxes: add ``"mask"`` / boxes to samples (``masks/`` / ``boxes.csv`` required).
        class_names: the classes in index order; must agree with ``classes.txt`` when both are given.
        min_side: images smaller than this on a side are bad items.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        with_masks: bool = False,
        with_boxes: bool = False,
        class_names: Sequence[str] | None = None,
        min_side: int = 1,
    ) -> None:
        super().__init__(split, with_masks, with_boxes, min_side)
        self.root = Path(root)
        require(self.root, "folder dataset root", FOLDER_LAYOUT)
        require(self.root / "images", "image folder", FOLDER_LAYOUT)
        rows = _read_csv(require(self.root / "labels.csv", "label file", FOLDER_LAYOUT), ("id", "labels"))
        names = {r["id"]: [n.strip() for n in r["labels"].split(";") if n.strip()] for r in rows}
        if len(names) != len(rows):
            raise ValueError(f"{self.root / 'labels.csv'}: an id is listed twice")
        for image_id in names:
            io.check_id(image_id, source=str(self.root / "labels.csv"))
        self.class_names = self._classes(class_names, names)
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self.ids = self._split_ids(split, names)
        self._files = self._image_files()
        index = {n: k for k, n in enumerate(self.class_names)}
        self._labels = np.zeros((len(self.ids), len(self.class_names)), dtype=np.float32)
        for i, image_id in enumerate(self.ids):
            self._labels[i, [index[n] for n in names[image_id]]] = 1.0
        self._sizes: dict[int, tuple[int, int]] = {}
        self.has_masks = (self.root / "masks").is_dir()
        self.has_boxes = (self.root / "boxes.csv").is_file()
        self._check_requests()
        self._box_records = self._read_boxes(index) if self.has_boxes else {}

    def _classes(self, given: Sequence[str] | None, names: dict[str, list[str]]) -> list[str]:
        used = sorted({n for ns in names.values() for n in ns})
        path = self.root / "classes.txt"
        listed = None
        if path.is_file():
            listed = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if given is not None and listed is not None and list(given) != listed:
            raise ValueError(f"class_names {list(given)} differ from {path}: {listed}")
        classes = list(given) if given is not None else listed if listed is not None else used
        unknown = sorted(set(used) - set(classes))
        if unknown:
            raise ValueError(
                f"{self.root / 'labels.csv'}: unknown class names {unknown}; classes are {classes}"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(f"duplicate class names in {classes}")
        return classes

    def _split_ids(self, split: str, names: dict[str, list[str]]) -> list[str]:
        splits = self.root / "splits"
        if not splits.is_dir():
            log.warning("%s has no splits/ folder: split %r is every id of labels.csv", self.root, split)
            return list(names)
        listed = [p.stem for p in splits.glob("*.txt")]
        ids = io.read_id_list(require_split(splits / f"{split}.txt", split, listed, FOLDER_LAYOUT))
        unlabelled = [i for i in ids if i not in names]
        if unlabelled:
            raise ValueError(f"{splits / f'{split}.txt'}: ids without a row in labels.csv: {unlabelled[:5]}")
        return ids

    def _image_files(self) -> list[Path]:
        found: dict[str, Path] = {}
        with os.scandir(self.root / "images") as it:
            for e in it:
                stem, suffix = os.path.splitext(e.name)
                if suffix.lower() in IMAGE_SUFFIXES:
                    found.setdefault(stem, Path(e.path))
        missing = [i for i in self.ids if i not in found]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} ids have no image in {self.root / 'images'} (first: {missing[:3]})\n"
                f"Expected layout:\n{FOLDER_LAYOUT}"
            )
        return [found[i] for i in self.ids]

    def _read_boxes(self, index: dict[str, int]) -> dict[str, dict[str, np.ndarray]]:
        path = self.root / "boxes.csv"
        position = {image_id: i for i, image_id in enumerate(self.ids)}
        per_id: dict[str, list[tuple[tuple[int, ...], int, bool]]] = {i: [] for i in self.ids}
        clip = BoxClipper(path)
        for n, row in enumerate(_read_csv(path, ("id", "class", "x0", "y0", "x1", "y1")), start=2):
            if row["id"] not in per_id:
                continue  # a box of an image of another split
            if row["class"] not in index:
                raise ValueError(f"{path}:{n}: unknown class {row['class']!r}")
            try:
                box = [int(row[k]) for k in ("x0", "y0", "x1", "y1")]
                difficult = bool(int(row.get("difficult") or 0))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: coordinates must be integers ({e})") from e
            i = position[row["id"]]
            if box[2] < box[0] or box[3] < box[1]:
                self.problems.setdefault(
                    i, f"{path}:{n}: inverted box {box} (0-based inclusive, x0<=x1, y0<=y1)"
                )
                continue
            try:
                hw = self.image_size(i)
            except BadItem:
                hw = (0, 0)  # the image is unreadable: the item is skipped when it is read
            clipped = clip(row["id"], box, hw)
            if clipped is not None:
                per_id[row["id"]].append((clipped, index[row["class"]], difficult))
        clip.report()
        return {
            i: make_boxes([b[0] for b in v], [b[1] for b in v], [b[2] for b in v]) for i, v in per_id.items()
        }

    def labels(self) -> np.ndarray:
        return self._labels

    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) from the image header (no decoding, EXIF orientation applied); cached."""
        if i not in self._sizes:
            self._sizes[i] = header_size(self._files[i])
        return self._sizes[i]

    def size_source(self, i: int) -> str:
        return "its header"

    def image_path(self, i: int) -> Path:
        return self._files[i]

    def mask_source(self, i: int) -> str:
        return f"mask {self.root / 'masks' / (self.ids[i] + '.png')}"

    def _mask(self, i: int) -> np.ndarray:
        return io.read_label_png(self.root / "masks" / f"{self.ids[i]}.png")

    def _boxes(self, i: int) -> dict[str, np.ndarray]:
        return self._box_records[self.ids[i]]
