"""VOCDataset on a tiny hand-made VOC tree: labels, difficult boxes, masks (incl. SegmentationClassAug),
and bad input (missing root, missing files, hostile ids, corrupt images)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from wsl import io
from wsl.data import DatasetNotFoundError, collate_samples
from wsl.data.voc import VOC_CLASSES, VOCDataset

CAT, DOG, PERSON = VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")


def test_labels_boxes_and_difficult(voc_root: Path) -> None:
    ds = VOCDataset(voc_root, "train", with_boxes=True)
    assert (
        ds.ids == ["a", "b"] and ds.class_names == list(VOC_CLASSES) and ds.category_ids == list(range(1, 21))
    )
    labels = ds.labels()
    assert labels.shape == (2, 20) and labels.dtype == np.float32
    assert np.flatnonzero(labels[0]).tolist() == [CAT, DOG], "difficult objects count in image labels"
    assert np.flatnonzero(labels[1]).tolist() == [PERSON]
    b = ds.load_boxes(0)
    assert b["boxes"].dtype == np.int64 and b["boxes"].tolist() == [[1, 2, 9, 11], [10, 0, 29, 19]]
    assert b["labels"].tolist() == [CAT, DOG] and b["difficult"].tolist() == [False, True]
    assert ds.image_size(0) == (20, 30)
    s = ds[0]
    assert s["boxes"].tolist() == b["boxes"].tolist() and s["box_difficult"].tolist() == [False, True]
    assert s["box_labels"].tolist() == [CAT, DOG] and "mask" not in s
    s["label"][:] = 0
    assert ds.labels()[0, CAT] == 1, "a sample's label is a copy"


def test_xml_stores_one_based_boxes(voc_root: Path) -> None:
    text = (voc_root / "Annotations" / "a.xml").read_text()
    assert "<xmin>2</xmin>" in text and "<ymax>12</ymax>" in text


def test_masks_from_segmentation_class_and_aug(voc_root: Path) -> None:
    ds = VOCDataset(voc_root, "train_aug", with_masks=True)
    assert ds.ids == ["a", "b", "c"]
    a, c = ds[0], ds[2]
    assert a["mask"].dtype == np.uint8 and a["mask"].shape == (20, 30)
    assert set(np.unique(a["mask"]).tolist()) == {0, CAT + 1, 255}
    assert set(np.unique(c["mask"]).tolist()) == {0, CAT + 1}, "read from SegmentationClassAug"
    assert a["error"] is None and c["error"] is None
    alt = voc_root.parent / "elsewhere"
    (voc_root / "SegmentationClassAug").rename(alt)
    with pytest.raises(DatasetNotFoundError, match="no mask"):
        VOCDataset(voc_root, "train_aug", with_masks=True)
    assert VOCDataset(voc_root, "train_aug", with_masks=True, aug_root=alt)[2]["mask"].max() == CAT + 1


def test_missing_root_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        VOCDataset(tmp_path / "nowhere", "train")
    msg = str(err.value)
    assert "nowhere" in msg and "JPEGImages" in msg and "ImageSets/Segmentation" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_split_or_annotation(voc_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="split 'test'"):
        VOCDataset(voc_root, "test")
    (voc_root / "Annotations" / "b.xml").unlink()
    with pytest.raises(DatasetNotFoundError, match="b.xml"):
        VOCDataset(voc_root, "train")


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "a\\b", "/etc/passwd"])
def test_hostile_ids_are_rejected(voc_root: Path, bad: str) -> None:
    io.write_text(voc_root / "ImageSets" / "Segmentation" / "evil.txt", f"a\n{bad}\n")
    with pytest.raises(ValueError, match="invalid image id"):
        VOCDataset(voc_root, "evil")


def test_unknown_class_name(voc_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown class names"):
        VOCDataset(voc_root, "train", class_names=["cat", "dog"])


@pytest.mark.parametrize("damage", ["truncate", "empty", "missing", "garbage"])
def test_corrupt_image_is_skipped_and_counted(voc_root: Path, damage: str, caplog) -> None:
    path = voc_root / "JPEGImages" / "b.jpg"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"not a jpeg at all" * 10)
    ds = VOCDataset(voc_root, "train_aug", with_masks=True, with_boxes=True)
    with pytest.raises(OSError, match="b.jpg"):
        ds.load_image(1)
    with caplog.at_level(logging.WARNING):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_samples)
        batches = list(loader)
    samples = [dict(zip(b, v)) for b in batches for v in zip(*b.values())]
    errors = [s for s in samples if s["error"] is not None]
    assert len(samples) == 3 and len(errors) == 1
    bad = errors[0]
    assert bad["id"] == "b" and bad["image"] is None and bad["mask"] is None and "b.jpg" in bad["error"]
    assert bad["label"][PERSON] == 1 and len(bad["boxes"]) == 1, "annotations survive an unreadable image"
    # the dataset does not log: its consumer skips, logs once and counts (wsl.errors.Failures)
    assert not any("b.jpg" in r.getMessage() for r in caplog.records)


def test_corrupt_mask_is_an_error_not_an_exception(voc_root: Path) -> None:
    (voc_root / "SegmentationClass" / "a.png").write_bytes(b"broken")
    s = VOCDataset(voc_root, "train", with_masks=True)[0]
    assert s["image"] is None and s["mask"] is None and "mask" in s["error"]


def test_coco_gt_from_xml_boxes(voc_root: Path) -> None:
    ds = VOCDataset(voc_root, "train", with_boxes=True)
    gt = ds.coco_gt()
    anns = gt.loadAnns(gt.getAnnIds(imgIds=[ds.coco_image_id(0)]))
    assert [a["bbox"] for a in anns] == [[1, 2, 9, 10], [10, 0, 20, 20]]
    assert [a["category_id"] for a in anns] == [CAT + 1, DOG + 1] and [a["area"] for a in anns] == [90, 400]
    assert [a["iscrowd"] for a in anns] == [0, 0] and [a["difficult"] for a in anns] == [0, 1]
    assert gt.imgs[1]["height"] == 20 and gt.imgs[1]["width"] == 30


def test_unknown_split_lists_the_splits_that_exist(data_root):
    from wsl.data.base import DatasetNotFoundError
    from wsl.data.coco import COCODataset
    from wsl.data.toy import TOY_CLASSES

    with pytest.raises(DatasetNotFoundError, match="the dataset has the splits train, trainval, val"):
        VOCDataset(data_root / "toy/VOCdevkit/VOC2012", "tran", class_names=list(TOY_CLASSES))
    with pytest.raises(DatasetNotFoundError, match="the dataset has the splits train, val"):
        COCODataset(data_root / "toy", "tran", ann_file="annotations/instances_{split}.json",
                    image_dir="VOCdevkit/VOC2012/JPEGImages")  # fmt: skip
