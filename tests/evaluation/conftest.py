"""Fixtures of the evaluation tests: the toy dataset with masks and boxes, hand-made VOC datasets, and CAM
files written from the ground truth (so that the expected scores are known)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsl import io
from wsl.data.toy import TOY_CLASSES
from wsl.data.voc import VOCDataset


@pytest.fixture(scope="session")
def toy_ds(data_root: Path) -> VOCDataset:
    """The toy val split (24 images) with masks and boxes."""
    root = data_root / "toy/VOCdevkit/VOC2012"
    return VOCDataset(root, "val", class_names=list(TOY_CLASSES), with_masks=True, with_boxes=True)


def gt_maps(ds, i: int, blur: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(classes, maps) of image ``i``: one map per labelled class, 1 on its GT mask pixels and 0 elsewhere
    (a "perfect" map), Gaussian-blurred with kernel ``blur`` when > 0 (graded, not perfect)."""
    mask = ds.load_mask(i)
    classes = np.flatnonzero(ds.labels()[i] > 0)
    maps = [(mask == c + 1).astype(np.float32) for c in classes]
    if blur:
        maps = [cv2.GaussianBlur(m, (blur, blur), 0) for m in maps]
    return classes, np.stack(maps) if maps else np.zeros((0, *mask.shape), np.float32)


@pytest.fixture
def write_gt_cams() -> Callable[..., Path]:
    """``write_gt_cams(folder, ds, blur=0) -> folder``: CAM files of :func:`gt_maps` at image size; the
    logits rank the labelled classes first."""

    def write(folder: Path, ds, blur: int = 0) -> Path:
        for i in range(len(ds)):
            classes, maps = gt_maps(ds, i, blur)
            logits = 2 * ds.labels()[i] - 1
            io.save_cams(folder / f"{ds.ids[i]}.npz", classes, maps, logits, maps.shape[1:])
        return folder

    return write


@pytest.fixture
def make_voc(tmp_path: Path) -> Callable[..., VOCDataset]:
    """``make_voc(items, names, split="train") -> VOCDataset`` with masks and boxes, from
    ``items = {id: (mask (H, W) uint8, [(class name, (x0, y0, x1, y1)), ...])}``."""

    def make(items: dict, names: list[str], split: str = "train") -> VOCDataset:
        root = tmp_path / "VOC2012"
        for image_id, (mask, objects) in items.items():
            h, w = mask.shape
            io.write_image(root / "JPEGImages" / f"{image_id}.jpg", np.zeros((h, w, 3), np.uint8))
            io.write_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
            objs = [{"name": n, "bbox": b} for n, b in objects]
            io.write_voc_xml(root / "Annotations" / f"{image_id}.xml", image_id, (h, w), objs)
        io.write_text(root / "ImageSets" / "Segmentation" / f"{split}.txt", "\n".join(items) + "\n")
        return VOCDataset(root, split, with_masks=True, with_boxes=True, class_names=names)

    return make


def assert_same_result(a, b) -> None:
    """Two result dataclasses hold the same values (arrays element-wise, NaN equal to NaN)."""
    assert type(a) is type(b)
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if hasattr(x, "__dataclass_fields__") and not isinstance(x, type):
            if name == "protocol":
                assert x == y
            else:
                assert_same_result(x, y)
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(np.asarray(x, float), np.asarray(y, float), err_msg=name)
        elif isinstance(x, dict) and any(isinstance(v, np.ndarray) for v in x.values()):
            assert x.keys() == y.keys(), name
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{name}[{k}]")
        elif isinstance(x, float) and np.isnan(x):
            assert isinstance(y, float) and np.isnan(y), name
        else:
            assert x == y, name


@pytest.fixture
def same_result() -> Callable[..., None]:
    return assert_same_result


@pytest.fixture
def maps_of() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """:func:`gt_maps` as a fixture."""
    return gt_maps
