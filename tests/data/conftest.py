"""Fixtures of the data tests: a small generated toy set and tiny hand-made VOC, COCO and folder trees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from wsl import io
from wsl.data.toy import ensure_toy

SMALL_TOY = {"seed": 0, "n_train": 16, "n_val": 8, "size": 112}


@pytest.fixture(scope="session")
def small_toy() -> dict[str, int]:
    """The generation parameters of :func:`toy_root`."""
    return dict(SMALL_TOY)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small toy dataset (16 train, 8 val images of about 112 px), generated once per session."""
    return ensure_toy(tmp_path_factory.mktemp("data") / "toy", **SMALL_TOY)


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """A tiny VOC tree: a (cat + difficult dog), b (person), c (cat, mask only in SegmentationClassAug)."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    objects = {
        "a": [
            {"name": "cat", "bbox": (1, 2, 9, 11)},
            {"name": "dog", "bbox": (10, 0, 29, 19), "difficult": 1},
        ],
        "b": [{"name": "person", "bbox": (0, 0, 5, 5)}],
        "c": [{"name": "cat", "bbox": (3, 3, 8, 8)}],
    }
    for image_id, objs in objects.items():
        io.write_image(root / "JPEGImages" / f"{image_id}.jpg", _image(rng, 20, 30))
        io.write_voc_xml(root / "Annotations" / f"{image_id}.xml", image_id, (20, 30), objs)
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:12, 1:10] = 8  # cat
    mask[1, :] = 255
    io.write_label_png(root / "SegmentationClass" / "a.png", mask)
    io.write_label_png(root / "SegmentationClass" / "b.png", np.full((20, 30), 15, dtype=np.uint8))
    aug = np.zeros((20, 30), dtype=np.uint8)
    aug[3:9, 3:9] = 8
    (root / "SegmentationClassAug").mkdir(parents=True)
    Image.fromarray(aug).save(  # SegmentationClassAug masks are single-channel ('L'), not palette PNGs
        root / "SegmentationClassAug" / "c.png"
    )
    io.write_text(root / "ImageSets" / "Segmentation" / "train.txt", "a\nb\n")
    io.write_text(root / "ImageSets" / "Segmentation" / "val.txt", "c\n")
    io.write_text(root / "ImageSets" / "SegmentationAug" / "train_aug.txt", "a\nb\nc\n")
    return root


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """A tiny COCO tree with non-contiguous category ids, an overlap, crowd regions and an empty image."""
    root = tmp_path / "coco"
    rng = np.random.default_rng(1)
    images = [
        {"id": 5, "file_name": "x1.jpg", "height": 20, "width": 30},
        {"id": 9, "file_name": "x2.jpg", "height": 16, "width": 16},
        {"id": 7, "file_name": "x3.jpg", "height": 20, "width": 30},
    ]
    for im in images:
        io.write_image(root / "train2014" / im["file_name"], _image(rng, im["height"], im["width"]))
    crowd = np.zeros((20, 30), dtype=np.uint8)
    crowd[15:20, 20:30] = 1
    rle = mask_util.encode(np.asfortranarray(crowd))
    rle["counts"] = rle["counts"].decode("ascii")
    flat = crowd.ravel(order="F")  # real COCO crowds use uncompressed RLE: run lengths from a zero run
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    raw_rle = {"size": [20, 30], "counts": ([0] if flat[0] else []) + runs}
    anns = [
        {"id": 1, "image_id": 5, "category_id": 11, "segmentation": _square(2, 2, 12, 12),
         "bbox": [2.4, 2.6, 7.3, 7.5], "area": 100.0, "iscrowd": 0},
        {"id": 2, "image_id": 5, "category_id": 2, "segmentation": _square(8, 8, 16, 16),
         "bbox": [8, 8, 8, 8], "area": 64.0, "iscrowd": 0},
        {"id": 3, "image_id": 5, "category_id": 90, "segmentation": rle,
         "bbox": [20, 15, 10, 5], "area": 50.0, "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 2, "segmentation": raw_rle,
         "bbox": [20, 15, 10, 5], "area": 50.0, "iscrowd": 1},
    ]  # fmt: skip
    cats = [{"id": 90, "name": "zebra"}, {"id": 2, "name": "cat"}, {"id": 11, "name": "dog"}]
    path = root / "annotations" / "instances_train2014.json"
    io.write_text(path, json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A tiny folder dataset: a.jpg (cat), b.png (cat;dog), c.jpg (nothing), with splits, masks, boxes."""
    root = tmp_path / "folder"
    rng = np.random.default_rng(2)
    io.write_image(root / "images" / "a.jpg", _image(rng, 10, 12))
    io.write_image(root / "images" / "b.png", _image(rng, 14, 9))
    io.write_image(root / "images" / "c.jpg", _image(rng, 8, 8))
    io.write_text(root / "labels.csv", "id,labels\na,cat\nb,cat; dog\nc,\n")
    io.write_text(root / "splits" / "train.txt", "a\nb\n")
    io.write_text(root / "splits" / "val.txt", "c\n")
    mask = np.zeros((14, 9), dtype=np.uint8)
    mask[0:5, 0:5] = 1
    mask[6:, :] = 2
    io.write_label_png(root / "masks" / "b.png", mask)
    io.write_label_png(root / "masks" / "a.png", np.ones((10, 12), dtype=np.uint8))
    io.write_text(
        root / "boxes.csv",
        "id,class,x0,y0,x1,y1,difficult\nb,cat,0,0,4,4,0\nb,dog,0,6,8,13,1\na,cat,0,0,11,9,\n",
    )
    return root
