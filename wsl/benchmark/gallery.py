"""The benchmark's overlay gallery: the same images for every method, every labelled class of each image.

For each image, ``gallery/<id>.png`` is the image with all its GT boxes and ``gallery/<id>__<method>.png``
the method's stored maps of EVERY labelled class side by side (so co-occurring classes such as boat and
water both show), each with its GT boxes (green) and predicted boxes (magenta, stage=boxes). Each map has
its scores: the box IoU of the Grad-CAM box (the map's largest segment above ``threshold`` of its maximum,
as GT-known localization draws it) with the class's GT boxes, and, with masks, the IoU of the same
thresholded map with the class's mask. The heat scale is :func:`wsl.cam.colorize`'s jet over [0, 1] (maps
divided by their maximum): :func:`colorbar_css` draws it in the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsl import io
from wsl.benchmark.overlays import GT_COLOR, gt_boxes, panel, read_boxes
from wsl.cam import colorize, draw_boxes, load_full
from wsl.layout import RunLayout
from wsl.metrics.boxes import box_iou
from wsl.metrics.localization import gradcam_box

GAP = 4  # white pixels between the panels of one cell


def cell_scores(
    map_hw: np.ndarray, boxes: np.ndarray, mask: np.ndarray | None, c: int, threshold: float
) -> dict:
    """``{"box_iou", "mask_iou"}`` of one class map ``(H, W)`` (None where there is nothing to score):
    the Grad-CAM box at ``threshold`` of the maximum against the class's GT boxes ``(N, 4)`` (best IoU; 0
    when the map has no box), and the map above the same threshold against ``mask == c + 1`` (255 = void,
    left out)."""
    box = gradcam_box(map_hw, threshold)
    box_score = None if not len(boxes) else (float(box_iou(box, boxes).max()) if box.size else 0.0)
    mask_score = None
    if mask is not None:
        fg, gt, valid = map_hw >= threshold * float(map_hw.max()), mask == c + 1, mask != 255
        union = int((valid & (fg | gt)).sum())
        mask_score = int((valid & fg & gt).sum()) / union if union else None
    return {"box_iou": box_score, "mask_iou": mask_score}


def side_by_side(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-height uint8 tiles in one row, :data:`GAP` white pixels apart."""
    gap = np.full((tiles[0].shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([t if k == 0 else np.concatenate([gap, t], 1) for k, t in enumerate(tiles)], 1)


def colorbar_css(cmap: str = "jet", stops: int = 11) -> str:
    """A CSS ``linear-gradient`` of the overlay colours from 0 (left) to 1 (right)."""
    rgb = colorize(np.linspace(0, 1, stops, dtype=np.float32)[None])[0]
    return (
        "linear-gradient(to right, "
        + ", ".join(
            f"rgb({r},{g},{b}) {100 * k / (stops - 1):g}%" for k, (r, g, b) in enumerate(rgb.tolist())
        )
        + ")"
    )


def gallery(ds, layout: RunLayout, methods: Sequence[str], split: str, indices: list[int], out: Path,
            threshold: float = 0.15) -> list[dict]:  # fmt: skip
    """Write the gallery's pictures under ``out/gallery`` and return its rows for
    :func:`wsl.benchmark.report.gallery_table`: ``{"id", "classes": [names], "image": path, "cells":
    {method: {"src": path, "scores": [cell_scores | None (no map) per class]} | None (no file)}}``."""
    boxes = {m: read_boxes(layout.boxes_file(m, split)) for m in methods}
    labels = ds.labels()
    rows = []
    for i in indices:
        image_id, image = ds.ids[i], ds.load_image(i)
        gt = gt_boxes(ds, i)
        mask = ds.load_mask(i) if getattr(ds, "has_masks", False) else None
        present = np.flatnonzero(labels[i] > 0).tolist()
        names = [ds.class_names[k] for k in gt["labels"].tolist()]
        io.write_image(
            out / "gallery" / f"{image_id}.png", draw_boxes(image, gt["boxes"], GT_COLOR, names, 1)
        )
        cells: dict[str, dict | None] = {}
        for m in methods:
            path = layout.cam_file(m, split, image_id)
            rec = load_full(path) if io.is_complete_npz(path) else None
            if rec is None or not present:
                cells[m] = None
                continue
            tiles, scores = [], []
            for c in present:
                own = gt["boxes"][gt["labels"] == c]
                k = np.flatnonzero(rec["classes"] == c)
                if not len(k):
                    tiles.append(panel(image, None, own))
                    scores.append(None)
                    continue
                full = np.asarray(rec["full"][k[0]], np.float32)
                pred = boxes[m].get((ds.coco_image_id(i), ds.category_ids[c]), [])
                tiles.append(panel(image, full, own, pred))
                scores.append(cell_scores(full, own, mask, c, threshold))
            src = f"gallery/{image_id}__{m}.png"
            io.write_image(out / src, side_by_side(tiles))
            cells[m] = {"src": src, "scores": scores}
        rows.append({"id": image_id, "classes": [ds.class_names[c] for c in present],
                     "image": f"gallery/{image_id}.png", "cells": cells})  # fmt: skip
    return rows
