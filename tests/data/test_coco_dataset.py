"""COCODataset on a tiny hand-made COCO tree: id mapping, crowd handling, overlaps, box rounding, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsl import io
from wsl.data import DatasetNotFoundError
from wsl.data.coco import COCODataset, bbox_to_inclusive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")
ANN = "annotations/instances_{split}2014.json"
CAT, DOG, ZEBRA = 0, 1, 2


def make(root: Path, **kw) -> COCODataset:
    return COCODataset(root, "train", ann_file=ANN, image_dir="{split}2014", **kw)


def test_categories_in_id_order(coco_root: Path) -> None:
    ds = make(coco_root)
    assert ds.category_ids == [2, 11, 90] and ds.class_names == ["cat", "dog", "zebra"]
    assert ds.ids == ["x1", "x3", "x2"], "ordered by COCO image id (5, 7, 9)"
    assert [ds.coco_image_id(i) for i in range(3)] == [5, 7, 9]
    assert ds.image_size(2) == (16, 16)


def test_labels_ignore_crowd_and_keep_empty_images(coco_root: Path) -> None:
    labels = make(coco_root).labels()
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, [[1, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_mask_crowd_is_void_and_later_annotations_overwrite(coco_root: Path) -> None:
    ds = make(coco_root, with_masks=True)
    m = ds[0]["mask"]
    assert m.shape == (20, 30) and m.dtype == np.uint8
    assert m[5, 5] == DOG + 1 and m[14, 14] == CAT + 1
    assert m[10, 10] == CAT + 1, "the cat (annotated after the dog) overwrites the overlap"
    assert (m[15:20, 20:30] == 255).all() and m[0, 0] == 0
    assert not (m == ZEBRA + 1).any()
    crowd_only = ds[1]["mask"]
    assert (crowd_only[15:, 20:] == 255).all() and set(np.unique(crowd_only).tolist()) == {0, 255}
    assert (ds[2]["mask"] == 0).all()


def test_boxes_exclude_crowd_and_round_outwards(coco_root: Path) -> None:
    ds = make(coco_root, with_boxes=True)
    b = ds.load_boxes(0)
    assert b["boxes"].tolist() == [[2, 2, 9, 10], [8, 8, 15, 15]]
    assert b["labels"].tolist() == [DOG, CAT] and b["difficult"].tolist() == [False, False]
    assert len(ds.load_boxes(1)["boxes"]) == 0 and ds.load_boxes(1)["boxes"].shape == (0, 4)
    s = ds[2]
    assert s["boxes"].shape == (0, 4) and s["box_labels"].dtype == np.int64


def test_bbox_to_inclusive() -> None:
    assert bbox_to_inclusive([2, 3, 4, 5], (20, 30)) == (2, 3, 5, 7)
    assert bbox_to_inclusive([2.4, 2.6, 7.3, 7.5], (20, 30)) == (2, 2, 9, 10)
    assert bbox_to_inclusive([-3, 18, 50, 9], (20, 30)) == (0, 18, 29, 19)
    assert bbox_to_inclusive([5, 5, 0, 0], (20, 30)) == (5, 5, 5, 5)


def test_coco_gt_is_the_annotation_file(coco_root: Path) -> None:
    ds = make(coco_root)
    assert ds.coco_gt() is ds.coco and len(ds.coco_gt().getAnnIds()) == 4


def test_class_names_must_match(coco_root: Path) -> None:
    assert make(coco_root, class_names=["cat", "dog", "zebra"]).num_classes == 3
    with pytest.raises(ValueError, match="differ"):
        make(coco_root, class_names=["dog", "cat", "zebra"])


def test_missing_files(coco_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="COCO root"):
        make(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="instances_val2014.json"):
        COCODataset(coco_root, "val", ann_file=ANN, image_dir="{split}2014")
    with pytest.raises(DatasetNotFoundError, match="image folder"):
        COCODataset(coco_root, "train", ann_file=ANN, image_dir="images")


def test_hostile_file_name(coco_root: Path) -> None:
    path = coco_root / "annotations" / "instances_train2014.json"
    data = io.read_json(path)
    data["images"][0]["file_name"] = "../x1.jpg"
    io.write_text(path, json.dumps(data))
    with pytest.raises(ValueError, match="invalid image id"):
        make(coco_root)


def test_corrupt_image(coco_root: Path) -> None:
    path = coco_root / "train2014" / "x3.jpg"
    path.write_bytes(path.read_bytes()[:40])
    ds = make(coco_root, with_masks=True, with_boxes=True)
    samples = [ds[i] for i in range(len(ds))]
    assert [s["error"] is not None for s in samples] == [False, True, False]
    assert samples[1]["image"] is None and "x3.jpg" in samples[1]["error"]
