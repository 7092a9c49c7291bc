"""The dataset interface shared by every loader (toy, VOC, COCO, folder).

A :class:`WSLDataset` serves one split. Annotations (image-level labels, boxes, image sizes) are read once
when the dataset is built, so :meth:`WSLDataset.labels` never touches an image; images and masks are read
on demand. Conventions, for every loader:

- ``C`` foreground classes with index ``k`` in ``0..C-1``; in masks ``k + 1`` is class ``k``, ``0`` is
  background and ``255`` is void (ignored).
- Images are RGB uint8 ``(H, W, 3)``; sizes are ``(H, W)``.
- Boxes are int64 ``(M, 4)`` ``x0, y0, x1, y1``, 0-based and inclusive.
- ``__getitem__`` never raises for an unreadable image: the sample carries ``image=None`` and ``error``,
  the problem is logged, and the stage skips and counts it.
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

log = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root, list or annotation file is missing; the message names the expected layout."""


def require(path: Path, what: str, layout: str) -> Path:
    """Return ``path`` if it exists, else raise one :class:`DatasetNotFoundError` naming the layout."""
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}\nExpected layout:\n{layout}")
    return path


def read_image_checked(path: Path) -> np.ndarray:
    """``io.read_image`` that turns every decoding failure (PIL raises ``OSError``, ``SyntaxError``,
    ``ValueError`` or ``DecompressionBombError``) into one ``OSError`` naming the path."""
    try:
        return io.read_image(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise OSError(f"cannot read {path}: {e}") from e


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

    Subclasses set ``class_names``, ``category_ids``, ``ids``, ``root``, ``has_masks``, ``has_boxes`` and
    implement the ``load_*`` methods, :meth:`labels` and :meth:`image_size`.
    """

    class_names: list[str]
    category_ids: list[int]
    split: str
    ids: list[str]
    root: Path
    has_masks: bool
    has_boxes: bool

    def __init__(self, split: str, with_masks: bool = False, with_boxes: bool = False) -> None:
        self.split = split
        self.with_masks = bool(with_masks)
        self.with_boxes = bool(with_boxes)

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

    @abc.abstractmethod
    def labels(self) -> np.ndarray:
        """(N, C) float32 multi-hot image-level labels of the split, from the annotations only.

        The dataset's cached array, not a copy: do not modify it (samples carry their own copy)."""

    @abc.abstractmethod
    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) of image ``i``, from the annotations where they hold it."""

    @abc.abstractmethod
    def load_image(self, i: int) -> np.ndarray:
        """RGB uint8 (H, W, 3); raises ``OSError`` naming the path if unreadable or truncated."""

    @abc.abstractmethod
    def load_mask(self, i: int) -> np.ndarray:
        """(H, W) uint8 class map: 0 background, ``k + 1`` class ``k``, 255 void."""

    @abc.abstractmethod
    def load_boxes(self, i: int) -> dict[str, np.ndarray]:
        """``{"boxes": int64 (M, 4) inclusive x0 y0 x1 y1, "labels": int64 (M,), "difficult": bool (M,)}``."""

    def coco_image_id(self, i: int) -> int:
        """The integer image id of image ``i`` in :meth:`coco_gt`: ``i + 1`` unless the dataset has ids."""
        return i + 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample; an unreadable image or mask gives ``image``/``mask`` None and an ``error`` message."""
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
        except OSError as e:
            sample["error"] = f"unreadable image {self.ids[i]!r}: {e}"
        if self.with_masks:
            sample["mask"] = None
            if sample["error"] is None:
                sample["mask"], sample["error"] = self._safe_mask(i, sample["image"].shape[:2])
        if self.with_boxes:
            b = self.load_boxes(i)
            sample.update(boxes=b["boxes"], box_labels=b["labels"], box_difficult=b["difficult"])
        if sample["error"] is not None:
            sample["image"] = None
            log.warning("%s: %s", type(self).__name__, sample["error"])
        return sample

    def _safe_mask(self, i: int, hw: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
        try:
            mask = self.load_mask(i)
        except (OSError, ValueError) as e:
            return None, f"unreadable mask {self.ids[i]!r}: {e}"
        if mask.shape != tuple(hw):
            return None, f"mask of {self.ids[i]!r} is {mask.shape}, image is {tuple(hw)}"
        return mask, None

    def coco_gt(self):
        """GT boxes as an in-memory ``pycocotools.coco.COCO`` so that ``COCOeval`` scores results directly.

        Image ids come from :meth:`coco_image_id`, category ids from ``category_ids``; every box is a
        non-crowd annotation with ``bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` and ``area = w * h``.
        VOC ``difficult`` boxes are kept as ordinary boxes (COCOeval has no such flag) and carry a
        ``difficult`` field for callers that want to filter them.
        """
        if not self.has_boxes:
            raise ValueError(f"{self!r} has no boxes to build a COCO ground truth from")
        images, anns = [], []
        for i, image_id in enumerate(self.ids):
            h, w = self.image_size(i)
            images.append({"id": self.coco_image_id(i), "file_name": image_id, "height": h, "width": w})
            b = self.load_boxes(i)
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
