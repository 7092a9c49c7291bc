"""The VOC and COCO views of the toy data describe the same images, objects and pixels."""

from __future__ import annotations

import contextlib
import io as _io
from pathlib import Path

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from wsl.data.coco import COCODataset
from wsl.data.toy import TOY_CATEGORY_IDS, TOY_CLASSES
from wsl.data.voc import VOCDataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def views(root: Path, split: str) -> tuple[VOCDataset, COCODataset]:
    voc = VOCDataset(
        root / "VOCdevkit/VOC2012", split, with_masks=True, with_boxes=True, class_names=TOY_CLASSES
    )
    coco = COCODataset(
        root,
        split,
        ann_file="annotations/instances_{split}.json",
        image_dir="VOCdevkit/VOC2012/JPEGImages",
        with_masks=True,
        with_boxes=True,
        class_names=TOY_CLASSES,
    )
    return voc, coco


def _sorted_boxes(b: dict[str, np.ndarray]) -> np.ndarray:
    rows = np.concatenate([b["boxes"], b["labels"][:, None], b["difficult"][:, None].astype(np.int64)], 1)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("split", ["train", "val"])
def test_views_agree(toy_root: Path, split: str) -> None:
    voc, coco = views(toy_root, split)
    assert voc.ids == coco.ids and len(voc) > 0
    assert voc.class_names == coco.class_names == list(TOY_CLASSES)
    np.testing.assert_array_equal(voc.labels(), coco.labels())
    assert voc.labels().dtype == np.float32 and voc.labels().shape == (len(voc), len(TOY_CLASSES))
    assert (voc.labels().sum(1) >= 1).all()
    for i in range(len(voc)):
        assert voc.image_size(i) == coco.image_size(i)
        np.testing.assert_array_equal(_sorted_boxes(voc.load_boxes(i)), _sorted_boxes(coco.load_boxes(i)))
        a, b = voc[i], coco[i]
        assert a["error"] is None and b["error"] is None and a["id"] == b["id"]
        assert a["image"].shape == (*voc.image_size(i), 3) and a["image"].dtype == np.uint8
        np.testing.assert_array_equal(a["image"], b["image"])
        void = a["mask"] == 255
        assert void.any() and not (b["mask"] == 255).any(), "only the VOC view has a void border"
        np.testing.assert_array_equal(a["mask"][~void], b["mask"][~void])
        present = np.unique(b["mask"][b["mask"] > 0]) - 1
        np.testing.assert_array_equal(present, np.flatnonzero(a["label"]))


def test_category_id_mapping(toy_root: Path) -> None:
    voc, coco = views(toy_root, "train")
    assert voc.category_ids == list(range(1, len(TOY_CLASSES) + 1))
    assert coco.category_ids == list(TOY_CATEGORY_IDS)
    assert np.any(np.diff(coco.category_ids) > 1), "the toy COCO ids must not be contiguous"
    for i in range(len(coco)):  # class index k <-> JSON category id, both ways
        anns = coco.coco.imgToAnns[coco.coco_image_id(i)]
        got = sorted(coco.category_ids[k] for k in coco.load_boxes(i)["labels"])
        assert got == sorted(a["category_id"] for a in anns)
        assert all(coco.class_names[coco.category_ids.index(a["category_id"])] for a in anns)


def _score_gt_as_results(ds: VOCDataset | COCODataset) -> float:
    gt = ds.coco_gt()
    dets = []
    for i in range(len(ds)):
        for (x0, y0, x1, y1), k in zip(
            ds.load_boxes(i)["boxes"].tolist(), ds.load_boxes(i)["labels"].tolist()
        ):
            bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
            dets.append(
                {
                    "image_id": ds.coco_image_id(i),
                    "category_id": ds.category_ids[k],
                    "bbox": bbox,
                    "score": 1.0,
                }
            )
    with contextlib.redirect_stdout(_io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])  # AP at IoU 0.5


@pytest.mark.parametrize("view", [0, 1])
def test_coco_gt_scores_its_own_boxes_perfectly(toy_root: Path, view: int) -> None:
    ds = views(toy_root, "val")[view]
    gt = ds.coco_gt()
    assert len(gt.getAnnIds()) == sum(len(ds.load_boxes(i)["labels"]) for i in range(len(ds)))
    assert sorted(gt.getCatIds()) == ds.category_ids
    assert _score_gt_as_results(ds) == pytest.approx(1.0)
