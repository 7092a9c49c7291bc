"""FolderDataset on a tiny folder of images with a labels CSV, optional classes, splits, masks and boxes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsl import io
from wsl.data import DatasetNotFoundError
from wsl.data.folder import FolderDataset


def test_labels_splits_and_classes(folder_root: Path) -> None:
    ds = FolderDataset(folder_root, "train")
    assert ds.class_names == ["cat", "dog"] and ds.category_ids == [1, 2], "sorted union of labels.csv"
    assert ds.ids == ["a", "b"]
    np.testing.assert_array_equal(ds.labels(), [[1, 0], [1, 1]])
    assert ds.image_size(1) == (14, 9)
    s = ds[1]
    assert s["image"].shape == (14, 9, 3) and s["error"] is None and s["label"].dtype == np.float32
    val = FolderDataset(folder_root, "val")
    assert val.ids == ["c"] and val.labels().tolist() == [[0, 0]]


def test_classes_file_and_argument(folder_root: Path) -> None:
    io.write_text(folder_root / "classes.txt", "dog\ncat\nbird\n")
    ds = FolderDataset(folder_root, "train")
    assert ds.class_names == ["dog", "cat", "bird"]
    np.testing.assert_array_equal(ds.labels(), [[0, 1, 0], [1, 1, 0]])
    assert FolderDataset(folder_root, "train", class_names=["dog", "cat", "bird"]).num_classes == 3
    with pytest.raises(ValueError, match="differ"):
        FolderDataset(folder_root, "train", class_names=["cat", "dog"])


def test_unknown_class(folder_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown class names"):
        FolderDataset(folder_root, "train", class_names=["cat"])


def test_masks_and_boxes(folder_root: Path) -> None:
    ds = FolderDataset(folder_root, "train", with_masks=True, with_boxes=True)
    s = ds[1]
    assert s["mask"].shape == (14, 9) and s["mask"][0, 0] == 1 and s["mask"][10, 3] == 2
    assert s["boxes"].tolist() == [[0, 0, 4, 4], [0, 6, 8, 13]]
    assert s["box_labels"].tolist() == [0, 1] and s["box_difficult"].tolist() == [False, True]
    assert ds.load_boxes(0)["boxes"].tolist() == [[0, 0, 11, 9]]
    val = FolderDataset(folder_root, "val", with_masks=True, with_boxes=True)
    assert val.load_boxes(0)["boxes"].shape == (0, 4)
    assert val[0]["mask"] is None and "c.png" in val[0]["error"], "a missing mask file is a sample error"
    gt = ds.coco_gt()
    assert len(gt.getAnnIds()) == 3 and gt.imgs[2]["height"] == 14


def test_without_splits_every_split_is_every_id(folder_root: Path, caplog) -> None:
    shutil.rmtree(folder_root / "splits")
    with caplog.at_level(logging.WARNING):
        ds = FolderDataset(folder_root, "train")
    assert ds.ids == ["a", "b", "c"] and "splits" in caplog.text


def test_missing_pieces(folder_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="labels.csv"):
        FolderDataset(tmp_path / "none", "train")
    with pytest.raises(DatasetNotFoundError, match="split 'test'"):
        FolderDataset(folder_root, "test")
    shutil.rmtree(folder_root / "masks")
    (folder_root / "boxes.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="no masks"):
        FolderDataset(folder_root, "train", with_masks=True)
    with pytest.raises(DatasetNotFoundError, match="no boxes"):
        FolderDataset(folder_root, "train", with_boxes=True)
    (folder_root / "images" / "b.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="no image"):
        FolderDataset(folder_root, "train")


@pytest.mark.parametrize("bad", ["../a", "sub/a"])
def test_hostile_ids(folder_root: Path, bad: str) -> None:
    io.write_text(folder_root / "labels.csv", f"id,labels\na,cat\n{bad},dog\n")
    with pytest.raises(ValueError, match="invalid image id"):
        FolderDataset(folder_root, "train")


def test_bad_csv(folder_root: Path) -> None:
    io.write_text(folder_root / "labels.csv", "name,classes\na,cat\n")
    with pytest.raises(ValueError, match="header"):
        FolderDataset(folder_root, "train")
    io.write_text(folder_root / "labels.csv", "id,labels\na,cat\nb,dog\n")
    io.write_text(folder_root / "boxes.csv", "id,class,x0,y0,x1,y1\na,cat,5,0,2,3\n")
    ds = FolderDataset(folder_root, "train", with_boxes=True)  # an inverted box: its image is a bad item
    with pytest.raises(OSError, match=r"boxes.csv:2: inverted box \[5, 0, 2, 3\]"):
        ds.load_image(0)


def test_corrupt_images(folder_root: Path) -> None:
    (folder_root / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    png = (folder_root / "images" / "b.png").read_bytes()
    (folder_root / "images" / "b.png").write_bytes(png[:60] + b"\x00" * 40 + png[100:])  # damaged chunks
    ds = FolderDataset(folder_root, "train")
    samples = [ds[0], ds[1]]
    assert all(s["image"] is None for s in samples)
    assert "a.jpg" in samples[0]["error"] and "b.png" in samples[1]["error"]
