"""Annotations checked against their images (VOC, COCO, folder): counted skips, clipped boxes, clear lines."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from badinput_corpus import TOY6, coco_tree, encode, jpeg, pattern, write_folder
from PIL import Image

from wsl import io
from wsl.data.coco import COCODataset
from wsl.data.folder import FolderDataset
from wsl.data.voc import VOCDataset
from wsl.errors import BadItem

# ------------------------------------------------------------------------------------------------- VOC


@pytest.fixture
def voc(tmp_path):
    """A VOC tree of four 40x60 images: ``good``, and three the tests damage."""
    root = tmp_path / "VOC2012"
    for k, image_id in enumerate(("good", "b", "c", "d")):
        io.write_bytes(root / "JPEGImages" / f"{image_id}.jpg", jpeg(40, 60, seed=k))
        io.write_voc_xml(
            root / "Annotations" / f"{image_id}.xml",
            image_id,
            (40, 60),
            [{"name": "star", "bbox": (5, 5, 20, 20)}],
        )
        io.write_label_png(root / "SegmentationClass" / f"{image_id}.png", np.zeros((40, 60), np.uint8))
    io.write_text(root / "ImageSets" / "Segmentation" / "train.txt", "good\nb\nc\nd\n")
    return root


def _xml(root, image_id: str, size=(40, 60), bbox=(5, 5, 20, 20)) -> None:
    io.write_voc_xml(
        root / "Annotations" / f"{image_id}.xml", image_id, size, [{"name": "star", "bbox": bbox}]
    )


def test_voc_size_that_disagrees_with_the_image_is_a_bad_item(voc):
    _xml(voc, "b", size=(60, 40))  # the XML says portrait, the JPEG is landscape
    ds = VOCDataset(voc, "train", class_names=TOY6)
    with pytest.raises(BadItem, match=r"b.jpg: the image is 40x60, .*b.xml <size> says 60x40"):
        ds.load_image(1)
    assert ds.load_image(0).shape == (40, 60, 3)


def test_voc_without_size_reads_the_header(voc):
    xml = (voc / "Annotations" / "b.xml").read_text()
    start, end = xml.index("<size>"), xml.index("</size>") + len("</size>")
    (voc / "Annotations" / "b.xml").write_text(xml[:start] + xml[end:])
    ds = VOCDataset(voc, "train", class_names=TOY6)
    assert ds.image_size(1) == (40, 60) and ds.load_image(1).shape == (40, 60, 3)


def test_voc_malformed_xml_and_inverted_box_are_bad_items(voc):
    (voc / "Annotations" / "b.xml").write_text("<annotation><object><name>star</name>")
    _xml(voc, "c", bbox=(30, 5, 10, 20))
    ds = VOCDataset(voc, "train", class_names=TOY6, with_boxes=True)
    with pytest.raises(BadItem, match="b.xml: malformed VOC annotation"):
        ds.load_image(1)
    with pytest.raises(BadItem, match=r"c.xml: inverted box \[30, 5, 10, 20\]"):
        ds.load_boxes(2)
    assert ds[2]["image"] is None and "inverted" in ds[2]["error"]
    assert len(ds.load_boxes(0)["boxes"]) == 1


def test_voc_boxes_beyond_the_image_are_clipped_with_one_warning(voc, caplog):
    _xml(voc, "b", bbox=(50, 30, 80, 70))  # reaches beyond 60 x 40
    _xml(voc, "c", bbox=(100, 100, 120, 120))  # entirely outside
    with caplog.at_level(logging.WARNING):
        ds = VOCDataset(voc, "train", class_names=TOY6, with_boxes=True)
    assert ds.load_boxes(1)["boxes"].tolist() == [[50, 30, 59, 39]]
    assert ds.load_boxes(2)["boxes"].shape == (0, 4) and ds.labels()[2, TOY6.index("star")] == 1
    warnings = [r.getMessage() for r in caplog.records if "reach beyond" in r.getMessage()]
    assert len(warnings) == 1 and "1 lie outside it and were dropped" in warnings[0], warnings


def test_voc_unknown_class_stops_with_one_line(voc):
    io.write_voc_xml(
        voc / "Annotations" / "b.xml", "b", (40, 60), [{"name": "unicorn", "bbox": (1, 1, 5, 5)}]
    )
    with pytest.raises(ValueError, match=r"unknown class names \['unicorn'\]"):
        VOCDataset(voc, "train", class_names=TOY6)


@pytest.mark.parametrize(
    "mask,words",
    [
        (np.zeros((30, 60), np.uint8), "mask of 30x60 for an image of 40x60"),
        (np.full((40, 60), 50, np.uint8), "values [50] are no class"),
        ("rgb", "must be palette or single-channel"),
        ("16bit", "must be palette or single-channel"),
        ("broken", "cannot identify"),
        ("missing", "No such file"),
    ],
)
def test_bad_masks_are_bad_items(voc, mask, words):
    path = voc / "SegmentationClass" / "b.png"
    if isinstance(mask, np.ndarray):
        io.write_label_png(path, mask)
    elif mask == "rgb":
        io.write_bytes(path, encode(pattern(40, 60), "PNG"))
    elif mask == "16bit":
        Image.fromarray(np.ones((40, 60), np.uint16)).save(path)
    elif mask == "broken":
        path.write_bytes(b"\x89PNG broken")
    ds = VOCDataset(voc, "train", class_names=TOY6)
    if isinstance(mask, str) and mask == "missing":
        path.unlink()
    with pytest.raises(BadItem) as e:
        ds.load_mask(1)
    assert "b.png" in str(e.value) and words in str(e.value), str(e.value)
    assert ds.load_mask(0).shape == (40, 60)


# ------------------------------------------------------------------------------------------------ COCO

CATS = [{"id": 3, "name": "ellipse"}, {"id": 7, "name": "star"}]


def _square(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _coco(tmp_path, images, anns):
    root = coco_tree(tmp_path / "coco", images, anns, CATS)
    return COCODataset(root, "train", "annotations.json", "images", with_masks=True, with_boxes=True)


def _ann(k, image_id, cat=7, bbox=(5, 5, 10, 10), seg=None):
    x, y, w, h = bbox
    return {
        "id": k,
        "image_id": image_id,
        "category_id": cat,
        "bbox": list(bbox),
        "area": w * h,
        "iscrowd": 0,
        "segmentation": [seg or _square(x, y, x + w, y + h)],
    }


def test_coco_size_that_disagrees_with_the_file_is_a_bad_item(tmp_path):
    images = [
        {"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
        {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60, "file_size": (48, 64)},
    ]
    ds = _coco(tmp_path, images, [_ann(1, 1), _ann(2, 2)])
    with pytest.raises(
        BadItem, match=r"b.jpg: the image is 48x64, .*annotations.json images\[\].height/width says 40x60"
    ):
        ds.load_image(1)
    assert ds.load_image(0).shape == (40, 60, 3)


def test_coco_missing_height_and_width_read_the_header(tmp_path):
    ds = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "file_size": (40, 60)}], [_ann(1, 1)])
    assert ds.image_size(0) == (40, 60) and ds.load_image(0).shape == (40, 60, 3)


@pytest.mark.parametrize("points", [1, 2])
def test_coco_polygon_of_fewer_than_3_points_is_a_bad_mask(tmp_path, points):
    images = [
        {"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
        {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60},
    ]
    short = [5.0, 5.0, 20.0, 20.0][: 2 * points]
    ds = _coco(tmp_path, images, [_ann(1, 1), _ann(2, 2, seg=short)])
    with pytest.raises(BadItem, match=rf"b.jpg .*annotation 2: a polygon of {2 * points} coordinates"):
        ds.load_mask(1)
    assert ds.load_image(1).shape == (40, 60, 3)  # the image and its label stay usable for classification
    assert ds.load_mask(0).max() == 2


def test_coco_unknown_category_and_bad_bbox_make_bad_items(tmp_path):
    images = [{"id": k, "file_name": f"{k}.jpg", "height": 40, "width": 60} for k in (1, 2, 3)]
    anns = [_ann(1, 1), _ann(2, 2, cat=99), _ann(3, 3, bbox=(5, 5, -4, 10))]
    ds = _coco(tmp_path, images, anns)
    with pytest.raises(BadItem, match="annotation 2 has category_id 99, not in categories"):
        ds.load_image(1)
    with pytest.raises(BadItem, match=r"annotation 3 has bbox \[5, 5, -4, 10\]"):
        ds.load_boxes(2)
    assert ds.labels()[0].tolist() == [0.0, 1.0] and ds.load_image(0).shape == (40, 60, 3)
    gt = ds.coco_gt()
    assert len(gt.getAnnIds()) == 3  # the annotation file as it is; COCOeval only sees scored images


def test_coco_boxes_beyond_the_image(tmp_path, caplog):
    images = [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}]
    anns = [_ann(1, 1, bbox=(50.0, 30.0, 10.4, 10.0)), _ann(2, 1, bbox=(40.0, 20.0, 40.0, 40.0))]
    with caplog.at_level(logging.WARNING):
        ds = _coco(tmp_path, images, anns)
    assert ds.load_boxes(0)["boxes"].tolist() == [[50, 30, 59, 39], [40, 20, 59, 39]]
    # 0.4 px beyond is COCO's float rounding (clipped silently); 20 px beyond is worth one warning
    warnings = [r.getMessage() for r in caplog.records if "reach beyond" in r.getMessage()]
    assert len(warnings) == 1 and "1 boxes reach beyond" in warnings[0], warnings


def test_coco_rle_of_another_size_is_a_bad_mask(tmp_path):
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(np.ones((20, 30), np.uint8)))
    rle["counts"] = rle["counts"].decode()
    ann = {**_ann(1, 1), "segmentation": rle}
    ds = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}], [ann])
    with pytest.raises(BadItem, match="segmentation of 20x30, image 40x60"):
        ds.load_mask(0)


# ---------------------------------------------------------------------------------------------- folder


def _folder(tmp_path, boxes_csv: str):
    images = {k: (".jpg", jpeg(40, 60, seed=n)) for n, k in enumerate(("a", "b", "c"))}
    root = write_folder(tmp_path / "f", images, {"a": ["star"], "b": ["star"], "c": ["boat"]})
    io.write_text(root / "boxes.csv", boxes_csv)
    return root


def test_folder_boxes_beyond_the_image_are_clipped_and_inverted_ones_skip_the_item(tmp_path, caplog):
    csv = "id,class,x0,y0,x1,y1\na,star,50,30,99,99\na,star,70,50,80,60\nb,star,9,0,2,3\nc,boat,0,0,5,5\n"
    with caplog.at_level(logging.WARNING):
        ds = FolderDataset(_folder(tmp_path, csv), "x", class_names=TOY6, with_boxes=True)
    assert ds.load_boxes(0)["boxes"].tolist() == [[50, 30, 59, 39]]
    warnings = [r.getMessage() for r in caplog.records if "reach beyond" in r.getMessage()]
    assert len(warnings) == 1 and "1 boxes reach beyond" in warnings[0] and "1 lie outside" in warnings[0]
    with pytest.raises(BadItem, match=r"boxes.csv:4: inverted box \[9, 0, 2, 3\]"):
        ds.load_image(1)
    assert ds.load_boxes(2)["boxes"].tolist() == [[0, 0, 5, 5]]


def test_folder_masks_are_checked_like_voc(tmp_path):
    root = _folder(tmp_path, "id,class,x0,y0,x1,y1\n")
    io.write_label_png(root / "masks" / "a.png", np.full((40, 60), 7, np.uint8))  # 6 classes: 7 is none
    io.write_label_png(root / "masks" / "b.png", np.zeros((40, 61), np.uint8))
    io.write_label_png(root / "masks" / "c.png", np.full((40, 60), 255, np.uint8))
    ds = FolderDataset(root, "x", class_names=TOY6, with_masks=True)
    with pytest.raises(BadItem, match=r"a.png: values \[7\] are no class \(0..6\) and not 255"):
        ds.load_mask(0)
    with pytest.raises(BadItem, match="b.png: mask of 40x61 for an image of 40x60"):
        ds.load_mask(1)
    assert (ds.load_mask(2) == 255).all()
