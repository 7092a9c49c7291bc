"""The dataset interface shared by every loader (toy, VOC, COCO, folder).

A :class:`WSLDataset` serves one split. Annotations (image-level labels, boxes, image sizes) are read once
when the dataset is built, so :meth:`WSLDataset.labels` never touches an image; images and masks are read
on demand. Conventions, for every loader:

- ``C`` foreground classes with index ``k`` in ``0..C-1``; in masks ``k + 1`` is class ``k``, ``0`` is
  background and ``255`` is void (ignored).
- Images are RGB uint8 ``(H, W, 3)`` decoded as viewers show them (:func:`wsl.io.read_image`); sizes are
  ``(H, W)`` of that decoded image, everywhere.
- Boxes are int64 ``(M, 4)`` ``x0, y0, x1, y1``, 0-based and inclusive, inside the image (boxes that
  reach beyond it are clipped when the split is loaded, with one warning).

Bad items (README "Bad input"): what is wrong with ONE item is a :class:`wsl.errors.BadItem` naming the
file and the reason, raised by :meth:`WSLDataset.load_image` / :meth:`~WSLDataset.load_mask` /
:meth:`~WSLDataset.load_boxes`, and the stage skips and counts the item. Checked when the split is loaded:
annotations that cannot describe their image (unknown COCO category ids, inverted boxes; recorded in
``problems``); when an item is read: an unreadable, empty or truncated image, one smaller than
``min_side`` on a side, one whose size disagrees with its annotation, a mask of the wrong size, with
values that are no class and not 255, or COCO polygons of fewer than 3 points. ``__getitem__`` never
raises for these: the sample carries ``image=None`` and ``error``, and the consumer logs and counts it.
"""

from __future__ import annotations

import abc
import contextlib
import io as _io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from wsl import io
from wsl.errors import BadItem

log = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root, list or annotation file is missing; the message names the expected layout."""


def require_split(path: Path, split: str, listed: list[str], layout: str) -> Path:
    """``path``, the file of split ``split``; when it is missing, the splits that exist (``listed``) are
    named, or the expected layout when there is none."""
    if path.exists():
        return path
    if listed:
        names = ", ".join(sorted(set(listed)))
        raise DatasetNotFoundError(
            f"split {split!r} not found ({path} does not exist); the dataset has the splits {names}"
        )
    return require(path, f"the file of split {split!r}", layout)


def require(path: Path, what: str, layout: str) -> Path:
    """Return ``path`` if it exists, else raise one :class:`DatasetNotFoundError` naming the layout."""
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}\nExpected layout:\n{layout}")
    return path


# What Pillow raises on a file it cannot decode (besides OSError): all mean "this image is unusable".
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_image_checked(path: Path) -> np.ndarray:
    """``io.read_image`` that turns every decoding failure into one :class:`BadItem` naming the path."""
    try:
        return io.read_image(path)
    except DECODE_ERRORS as e:
        raise BadItem(f"cannot read {path}: {e}") from e


def header_size(path: Path) -> tuple[int, int]:
    """(H, W) of the decoded image from its header (:func:`wsl.io.image_size`); :class:`BadItem` if
    the header cannot be read."""
    try:
        return io.image_size(path)
    except DECODE_ERRORS as e:
        raise BadItem(f"cannot read {path}: {e}") from e


def empty_boxes() -> dict[str, np.ndarray]:
    """The box record of an image without boxes."""
    return {
        "boxes": np.zeros((0, 4), dtype=np.int64),
        "labels": np.zeros((0,), dtype=np.int64),
        "difficult": np.zeros((0,), dtype=bool),
    }


def make_boxes(boxes: Sequence[Sequence[int]], labels: Sequence[int], difficult: Sequence[bool]) -> dict:
    """Pack box lists into the arrays of :meth:`WSLDataset.load_boxes`."""
    if not len(boxes):
        return empty_boxes()
    return {
        "boxes": np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
        "difficult": np.asarray(difficult, dtype=bool),
    }


def clip_box(box: Sequence[int], hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """An inclusive ``(x0, y0, x1, y1)`` box clipped to an (H, W) image; None when nothing of it is inside."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = hw
    if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
        return None
    return max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)


class BoxClipper:
    """Clips the boxes of a split to their images while it is loaded, then warns ONCE for all of them.

    Boxes reaching at most ``slack`` px beyond the image are clipped silently (COCO's float boxes often
    end a fraction of a pixel past the border).
    """

    def __init__(self, source: object, slack: int = 0) -> None:
        self.source, self.slack, self.clipped, self.dropped, self.first = source, slack, 0, 0, ""

    def __call__(self, image_id: str, box: Sequence[int], hw: tuple[int, int]) -> tuple | None:
        """``box`` inside the (H, W) image (None: entirely outside, dropped). A size of 0 means unknown."""
        if min(hw) <= 0:
            return tuple(box)
        out = clip_box(box, hw)
        x0, y0, x1, y1 = (int(v) for v in box)
        beyond = max(-x0, -y0, x1 - (hw[1] - 1), y1 - (hw[0] - 1))
        if beyond > self.slack or out is None:
            self.clipped += out is not None
            self.dropped += out is None
            self.first = self.first or f"{image_id}: {list(box)} in an image of {hw[0]}x{hw[1]}"
        return out

    def report(self) -> None:
        if self.clipped or self.dropped:
            log.warning(
                "%s: %d boxes reach beyond their image and were clipped to it, %d lie outside it and were "
                "dropped (first: %s)",
                self.source,
                self.clipped,
                self.dropped,
                self.first,
            )


def quiet_coco(dataset: dict[str, Any] | None = None, ann_file: str | Path | None = None):
    """Build a ``pycocotools.coco.COCO`` from a dict or a file without its progress prints."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(_io.StringIO()):
        if ann_file is not None:
            return COCO(str(ann_file))
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


class WSLDataset(torch.utils.data.Dataset, abc.ABC):
    """One split of a multi-label dataset with optional masks and boxes.

    Subclasses set ``class_names``, ``category_ids``, ``ids``, ``root``, ``has_masks``, ``has_boxes``,
    record the items whose annotations are unusable in ``problems`` (index -> reason), and implement
    :meth:`labels`, :meth:`image_size`, :meth:`image_path`, :meth:`_mask` and :meth:`_boxes`; the base
    checks what they return (see the module docstring).

    ``min_side``: images smaller than this on a side are bad items (a classifier needs a few pixels per
    output cell: small_cnn fails below 7 px, VGG-16 below 16 px; stage configs use ``dataset.min_side``).
    """

    class_names: list[str]
    category_ids: list[int]
    split: str
    ids: list[str]
    root: Path
    has_masks: bool
    has_boxes: bool

    def __init__(
        self, split: str, with_masks: bool = False, with_boxes: bool = False, min_side: int = 1
    ) -> None:
        self.split = split
        self.with_masks = bool(with_masks)
        self.with_boxes = bool(with_boxes)
        self.min_side = max(1, int(min_side))
        self.problems: dict[int, str] = {}

    def _check_requests(self) -> None:
        """Fail early when masks or boxes are requested from a dataset that has none."""
        if self.with_masks and not self.has_masks:
            raise DatasetNotFoundError(f"{type(self).__name__} at {self.root} has no masks (with_masks=True)")
        if self.with_boxes and not self.has_boxes:
            raise DatasetNotFoundError(f"{type(self).__name__} at {self.root} has no boxes (with_boxes=True)")

    @property
    def num_classes(self) -> int:
        """``C``, the number of foreground classes."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"

    # ------------------------------------------------------------------------------ what loaders provide
    @abc.abstractmethod
    def labels(self) -> np.ndarray:
        """(N, C) float32 multi-hot image-level labels of the split, from the annotations only.

        The dataset's cached array, not a copy: do not modify it (samples carry their own copy)."""

    @abc.abstractmethod
    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) of image ``i`` from the annotations where they hold it, else from the image header
        (EXIF orientation applied); :class:`BadItem` when neither can be read."""

    @abc.abstractmethod
    def image_path(self, i: int) -> Path:
        """The file of image ``i``."""

    @abc.abstractmethod
    def _mask(self, i: int) -> np.ndarray:
        """The stored (H, W) class map of image ``i`` (checked by :meth:`load_mask`)."""

    @abc.abstractmethod
    def _boxes(self, i: int) -> dict[str, np.ndarray]:
        """The boxes of image ``i`` (see :meth:`load_boxes`)."""

    def mask_source(self, i: int) -> str:
        """Where the mask of image ``i`` comes from, for messages."""
        return f"mask of {self.ids[i]!r}"

    def size_source(self, i: int) -> str:
        """Where :meth:`image_size` of image ``i`` comes from, for messages."""
        return "its annotation"

    # ------------------------------------------------------------------------------------ checked reads
    def check(self, i: int) -> None:
        """Raise :class:`BadItem` when the annotations of image ``i`` were found unusable at load time."""
        if i in self.problems:
            raise BadItem(self.problems[i])

    def load_image(self, i: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) as viewers show it; :class:`BadItem` naming the file when it is
        unreadable, truncated, smaller than ``min_side``, or not of the size its annotation says."""
        self.check(i)
        path = self.image_path(i)
        image = read_image_checked(path)
        hw = tuple(image.shape[:2])
        if min(hw) < self.min_side:
            raise BadItem(f"{path}: image of {hw[0]}x{hw[1]} px is smaller than min_side={self.min_side}")
        said = tuple(int(v) for v in self.image_size(i))
        if said != hw:
            raise BadItem(
                f"{path}: the image is {hw[0]}x{hw[1]}, {self.size_source(i)} says {said[0]}x{said[1]}"
            )
        return image

    def load_mask(self, i: int) -> np.ndarray:
        """(H, W) uint8 class map: 0 background, ``k + 1`` class ``k``, 255 void; :class:`BadItem` when
        it is unreadable, not a class-index PNG, of another size than the image, or holds other values."""
        self.check(i)
        where = self.mask_source(i)
        try:
            mask = self._mask(i)
        except (*DECODE_ERRORS, KeyError, IndexError) as e:
            raise BadItem(f"{where}: {e}") from e
        hw = tuple(int(v) for v in self.image_size(i))
        if mask.shape != hw:
            raise BadItem(f"{where}: mask of {mask.shape[0]}x{mask.shape[1]} for an image of {hw[0]}x{hw[1]}")
        bad = (mask > self.num_classes) & (mask != 255)
        if bad.any():
            values = np.unique(mask[bad])[:5].tolist()
            raise BadItem(f"{where}: values {values} are no class (0..{self.num_classes}) and not 255 (void)")
        return mask

    def load_boxes(self, i: int) -> dict[str, np.ndarray]:
        """``{"boxes": int64 (M, 4) inclusive x0 y0 x1 y1, "labels": int64 (M,), "difficult": bool (M,)}``;
        :class:`BadItem` when the item's annotations are unusable."""
        self.check(i)
        return dict(self._boxes(i))

    def coco_image_id(self, i: int) -> int:
        """The integer image id of image ``i`` in :meth:`coco_gt`: ``i + 1`` unless the dataset has ids."""
        return i + 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample; an unusable image or mask gives ``image``/``mask`` None and an ``error`` message
        (not logged here: the consumer skips, logs and counts it once)."""
        if not 0 <= i < len(self.ids):
            raise IndexError(f"index {i} out of range for {len(self.ids)} images")
        sample: dict[str, Any] = {
            "index": i,
            "id": self.ids[i],
            "image": None,
            "label": self.labels()[i].copy(),
            "error": None,
        }
        try:
            sample["image"] = self.load_image(i)
            if self.with_masks:
                sample["mask"] = self.load_mask(i)
        except OSError as e:  # BadItem, and any other failure to read the item's files
            sample.update(image=None, error=str(e))
        if self.with_masks:
            sample.setdefault("mask", None)
        if self.with_boxes:
            b = self._boxes(i)
            sample.update(boxes=b["boxes"], box_labels=b["labels"], box_difficult=b["difficult"])
        return sample

    def coco_gt(self):
        """GT boxes as an in-memory ``pycocotools.coco.COCO`` so that ``COCOeval`` scores results directly.

        Image ids come from :meth:`coco_image_id`, category ids from ``category_ids``; every box is a
        non-crowd annotation with ``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` and ``area = w * h``.
        VOC ``difficult`` boxes are kept as ordinary boxes (COCOeval has no such flag) and carry a
        ``difficult`` field for callers that want to filter them. Items in ``problems`` have no box.
        """
        if not self.has_boxes:
            raise ValueError(f"{self!r} has no boxes to build a COCO ground truth from")
        images, anns = [], []
        for i, image_id in enumerate(self.ids):
            if i in self.problems:
                continue
            try:
                h, w = self.image_size(i)
            except BadItem:
                continue
            images.append({"id": self.coco_image_id(i), "file_name": image_id, "height": h, "width": w})
            b = self._boxes(i)
            for (x0, y0, x1, y1), k, d in zip(b["boxes"].tolist(), b["labels"].tolist(), b["difficult"]):
                bw, bh = x1 - x0 + 1, y1 - y0 + 1
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": self.coco_image_id(i),
                        "category_id": self.category_ids[k],
                        "bbox": [x0, y0, bw, bh],
                        "area": bw * bh,
                        "iscrowd": 0,
                        "difficult": int(d),
                    }
                )
        cats = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]
        return quiet_coco({"images": images, "annotations": anns, "categories": cats})


def collate_samples(batch: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """DataLoader ``collate_fn`` that keeps lists (images differ in size): list of dicts -> dict of lists."""
    if not batch:
        return {}
    return {k: [s[k] for s in batch] for k in batch[0]}
