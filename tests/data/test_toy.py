"""The toy generator: determinism, safe idempotent generation, void borders, sizes, scene plans, stats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from wsl import io
from wsl.data import toy
from wsl.data.toy import MARKER, TOY_CATEGORY_IDS, TOY_CLASSES, ToyDatasetError, ensure_toy
from wsl.data.toy_stats import toy_statistics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

TINY = {"n_train": 4, "n_val": 2, "size": 80}
SAMPLE_FILES = [
    "VOCdevkit/VOC2012/JPEGImages/train_00000.jpg",
    "VOCdevkit/VOC2012/JPEGImages/val_00001.jpg",
    "VOCdevkit/VOC2012/SegmentationClass/train_00003.png",
    "VOCdevkit/VOC2012/Annotations/train_00002.xml",
    "annotations/instances_train.json",
]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = ensure_toy(tmp_path / "a", seed=3, **TINY)
    b = ensure_toy(tmp_path / "b", seed=3, **TINY)
    c = ensure_toy(tmp_path / "c", seed=4, **TINY)
    for f in SAMPLE_FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
        assert (a / f).read_bytes() != (c / f).read_bytes(), f


def test_layout_and_lists(toy_root: Path, small_toy: dict[str, int]) -> None:
    voc = toy_root / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    train, val = io.read_id_list(sets / "train.txt"), io.read_id_list(sets / "val.txt")
    assert len(train) == small_toy["n_train"] and len(val) == small_toy["n_val"]
    assert io.read_id_list(sets / "trainval.txt") == train + val
    for i in train + val:
        for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "xml"), ("SegmentationClass", "png")):
            assert (voc / sub / f"{i}.{ext}").is_file()
    assert io.read_json(toy_root / MARKER) == {"generator": toy.GENERATOR_VERSION, **small_toy}
    assert not list(toy_root.parent.glob(".toy.tmp-*"))


def test_ensure_is_idempotent_and_refuses_other_parameters(tmp_path: Path) -> None:
    root = ensure_toy(tmp_path / "toy", seed=0, **TINY)
    jpg = root / SAMPLE_FILES[0]
    before = jpg.stat().st_mtime_ns
    assert ensure_toy(root, seed=0, **TINY) == root
    assert jpg.stat().st_mtime_ns == before
    with pytest.raises(ToyDatasetError, match="seed"):
        ensure_toy(root, seed=1, **TINY)
    with pytest.raises(ToyDatasetError, match="size"):
        ensure_toy(root, seed=0, n_train=4, n_val=2, size=96)
    (tmp_path / "other").mkdir()
    with pytest.raises(ToyDatasetError, match="not a complete toy dataset"):
        ensure_toy(tmp_path / "other", seed=0, **TINY)
    with pytest.raises(ValueError):
        ensure_toy(tmp_path / "bad", n_train=0)


def test_sizes_vary_and_are_not_square(toy_root: Path, small_toy: dict[str, int]) -> None:
    stats = toy_statistics(toy_root, "train")
    size = small_toy["size"]
    for lo, hi in (stats["height"], stats["width"]):
        assert 0.9 * size - 1 <= lo < hi <= 1.1 * size + 1
    assert stats["square_fraction"] < 0.5


def _instances(toy_root: Path, split: str) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Per file stem: the instance map rebuilt from the COCO RLEs (visible masks) and its class indices."""
    data = io.read_json(toy_root / "annotations" / f"instances_{split}.json")
    out = {}
    for im in data["images"]:
        inst = np.zeros((im["height"], im["width"]), dtype=np.uint8)
        classes = []
        for a in (a for a in data["annotations"] if a["image_id"] == im["id"]):
            m = mask_util.decode(a["segmentation"]).astype(bool)
            assert not inst[m].any(), "visible masks must not overlap"
            classes.append(TOY_CATEGORY_IDS.index(a["category_id"]))
            inst[m] = len(classes)
        out[Path(im["file_name"]).stem] = (inst, classes)
    return out


def test_void_border_outlines_every_object(toy_root: Path) -> None:
    voc = toy_root / "VOCdevkit" / "VOC2012"
    k = np.ones((3, 3), dtype=np.uint8)
    for image_id, (inst, classes) in _instances(toy_root, "train").items():
        sem = io.read_label_png(voc / "SegmentationClass" / f"{image_id}.png")
        boundary = cv2.dilate(inst, k) != cv2.erode(inst, k)
        assert np.array_equal(sem == 255, boundary), image_id
        for j, c in enumerate(classes):
            m = inst == j + 1
            assert (boundary & m).any() and (m & ~boundary).any(), "border around an object with an interior"
            assert (sem[m & ~boundary] == c + 1).all()
        assert (sem[(inst == 0) & ~boundary] == 0).all()
        assert boundary.mean() < 0.25


def test_every_object_keeps_a_visible_interior(toy_root: Path) -> None:
    for inst, classes in _instances(toy_root, "val").values():
        assert 1 <= len(classes) <= 4
        areas = np.bincount(inst.ravel(), minlength=len(classes) + 1)[1:]
        assert (areas >= toy.MIN_PIXELS).all()


def test_scene_plans() -> None:
    plans = [toy.plan_classes(np.random.default_rng([9, i])) for i in range(3000)]
    assert all(1 <= len(p) <= 4 for p in plans)
    assert all(toy.WATER not in p[1:] for p in plans), "water is drawn first, below everything"
    boat = [p for p in plans if toy.BOAT in p]
    assert 0.8 < np.mean([toy.WATER in p for p in boat]) < 0.97
    freq = np.array([np.mean([k in p for p in plans]) for k in range(len(TOY_CLASSES))])
    assert (freq > 0.2).all() and (freq < 0.5).all()


def test_render_is_a_function_of_the_generator() -> None:
    a = toy.render_scene(np.random.default_rng(5), 100, 120)
    b = toy.render_scene(np.random.default_rng(5), 100, 120)
    assert a[0].shape == (100, 120, 3) and a[0].dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_statistics(toy_root: Path, small_toy: dict[str, int]) -> None:
    stats = toy_statistics(toy_root, "train")
    n = small_toy["n_train"]
    assert stats["images"] == n and stats["classes"] == list(TOY_CLASSES)
    assert sum(stats["objects_per_image"]["histogram"].values()) == n
    assert set(stats["objects_per_image"]["histogram"]) <= {1, 2, 3, 4}
    assert sum(stats["instances"].values()) == stats["objects"]
    co = np.array(stats["cooccurrence"])
    assert np.array_equal(co, co.T) and np.allclose(np.diag(co) / n, list(stats["image_frequency"].values()))
    assert 0 <= stats["pair"]["P(water|boat)"] <= 1
