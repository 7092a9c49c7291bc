"""Overlay pictures of the benchmark (see also :mod:`wsl.benchmark.gallery`) and of stage=visualize, drawn
with :mod:`wsl.cam`.

A panel is the heatmap over the image (jet, alpha 0.5), the GT boxes of the class in green and the
predicted box(es) in magenta. :func:`class_maps` computes maps directly on a classifier (any layer);
:func:`auto_layers` picks the target layers of a layer comparison; :func:`misclassified` finds the images
whose predicted class set differs from the label and :func:`failure_tiles` draws them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsl import io
from wsl.cam import CAMExtractor, draw_boxes, normalize_maps, overlay, upsample_maps
from wsl.data.base import empty_boxes
from wsl.data.transforms import to_tensor

GT_COLOR = (0, 220, 0)
PRED_COLOR = (255, 0, 255)


def gt_boxes(ds, i: int) -> dict[str, np.ndarray]:
    """The GT boxes of image ``i`` (``{"boxes": (N, 4), "labels": (N,)}``), empty when ``ds`` has none."""
    return ds.load_boxes(i) if ds.has_boxes else empty_boxes()


def panel(image: np.ndarray, map_hw: np.ndarray | None, gt_boxes=(), pred_boxes=(), alpha: float = 0.5):
    """``image`` (H, W, 3) uint8 with ``map_hw`` (H, W) blended over it (None: the image alone) and boxes
    drawn (``(N, 4)`` inclusive corners x0, y0, x1, y1)."""
    out = image if map_hw is None else overlay(image, map_hw, alpha=alpha)
    if len(gt_boxes):
        out = draw_boxes(out, np.asarray(gt_boxes).reshape(-1, 4), color=GT_COLOR)
    if len(pred_boxes):
        out = draw_boxes(out, np.asarray(pred_boxes).reshape(-1, 4), color=PRED_COLOR)
    return out


def read_boxes(path: Path) -> dict[tuple[int, int], list[list[int]]]:
    """stage=boxes' COCO results as ``{(image_id, category_id): [[x0, y0, x1, y1], ...]}`` (inclusive)."""
    out: dict[tuple[int, int], list[list[int]]] = {}
    for r in io.read_json(path) if Path(path).is_file() else []:
        x, y, w, h = r["bbox"]
        out.setdefault((r["image_id"], r["category_id"]), []).append([x, y, x + w - 1, y + h - 1])
    return out


def class_maps(
    model: nn.Module, method: str, layer: str | list[str], x: torch.Tensor, classes: list[int]
) -> np.ndarray:
    """``(K, H, W)`` maps in [0, 1] of ``classes`` for one image ``x`` ``(1, 3, H, W)``: ReLU, each map
    divided by its maximum, bilinear to the image."""
    with CAMExtractor(model, method=method, target_layer=layer) as ext:
        maps = ext(x, [classes])[0]
    return upsample_maps(normalize_maps(maps.clamp(min=0), mode="max"), tuple(x.shape[-2:])).cpu().numpy()


def class_rows(
    image: np.ndarray,
    gt: dict[str, np.ndarray],
    classes: list[int],
    names: list[str],
    columns: dict[str, np.ndarray],
    alpha: float,
) -> tuple[list[np.ndarray], list[str]]:
    """Tiles and titles of a grid: per class, the image with its GT boxes then one overlay per column.

    ``columns`` maps a column title to the ``(K, H, W)`` maps of ``classes``; ``names`` titles each row.
    """
    tiles, titles = [], []
    for k, c in enumerate(classes):
        own = gt["boxes"][gt["labels"] == c]
        tiles.append(panel(image, None, own))
        titles.append(names[k])
        for title, maps in columns.items():
            tiles.append(panel(image, maps[k], own, alpha=alpha))
            titles.append(title)
    return tiles, titles


def auto_layers(model: nn.Module, target_layer: str, x: torch.Tensor, most: int = 4) -> list[str]:
    """The module that finishes last at each spatial resolution, up to and including ``target_layer``;
    the deepest ``most`` of them (ResNet: layer1..layer4; the small CNN: one per stage of ``features``).
    Modules run more than once per forward pass (ResNet's shared ReLUs) are never picked."""
    order: list[tuple[str, tuple[int, ...]]] = []
    calls: Counter[str] = Counter()

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            calls[name] += 1
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                order.append((name, tuple(output.shape[-2:])))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    last: dict[tuple[int, ...], str] = {}
    for name, hw in order:
        if calls[name] == 1:
            last[hw] = name
        if name == target_layer:
            break
    return list(last.values())[-most:]


def misclassified(model: nn.Module, ds, mean, std, device: torch.device, threshold: float, most: int,
                  on_error=None) -> list[tuple[int, list[int], np.ndarray]]:  # fmt: skip
    """The first ``most`` images of ``ds`` whose predicted class set (``sigmoid(logit) > threshold``)
    differs from the label: ``(index, predicted | true classes sorted, probabilities (C,))``.
    An unreadable image is skipped (``on_error(image_id, error)`` is called when given)."""
    found, labels = [], ds.labels()
    for i in range(len(ds)):
        if len(found) >= most:
            break
        try:
            image = ds.load_image(i)
        except OSError as e:
            if on_error is not None:
                on_error(ds.ids[i], e)
            continue
        with torch.inference_mode():
            probs = (
                torch.sigmoid(model(to_tensor(image, mean, std)[None].to(device)).float())[0].cpu().numpy()
            )
        pred, true = set(np.flatnonzero(probs > threshold)), set(np.flatnonzero(labels[i] > 0))
        if pred != true:
            found.append((i, sorted(int(c) for c in pred | true), probs))
    return found


def failure_tiles(image: np.ndarray, gt: dict[str, np.ndarray], label: np.ndarray, classes: list[int],
                  probs: np.ndarray, maps: np.ndarray, class_names: Sequence[str], threshold: float,
                  alpha: float, title: str) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """One row for a misclassified image: the image with every GT box, then the map ``maps[k]`` of each of
    ``classes``, titled TP (predicted and true), FP (predicted, not true) or FN (true, missed) with its
    probability."""
    true = set(np.flatnonzero(np.asarray(label) > 0).tolist())
    tiles, titles = [panel(image, None, gt["boxes"])], [title]
    for k, c in enumerate(classes):
        kind = ("TP" if probs[c] > threshold else "FN") if c in true else "FP"
        tiles.append(panel(image, maps[k], gt["boxes"][gt["labels"] == c], alpha=alpha))
        titles.append(f"{kind} {class_names[c]} {probs[c]:.2f}")
    return tiles, titles
