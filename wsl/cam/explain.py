"""One picture that explains a classifier's decision on one image: its top classes, each as a CAM overlay.

What a pytorch-grad-cam user runs on a single photo: the image, then one overlay per top-scoring class,
titled with the class name and its probability (sigmoid of the logit: the classifiers are multi-label).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wsl.cam.extractor import CAMExtractor
from wsl.cam.overlay import grid, overlay
from wsl.cam.postprocess import normalize_maps, upsample_maps
from wsl.data.transforms import to_tensor


@torch.no_grad()
def top_classes(model: torch.nn.Module, x: torch.Tensor, k: int) -> tuple[list[int], np.ndarray]:
    """The ``k`` highest-scoring classes of one image ``x`` (1, 3, H, W) and every class's probability."""
    probs = torch.sigmoid(model(x).float())[0]
    return torch.topk(probs, min(k, probs.numel())).indices.tolist(), probs.cpu().numpy()


def explain(
    model: torch.nn.Module,
    image: np.ndarray,
    method: str,
    target_layer: str | list[str],
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str],
    top_k: int = 3,
    alpha: float = 0.5,
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """The picture (uint8 (H', W', 3): the image, then one overlay per top class) and ``(name, p)`` of
    the classes shown. ``model`` is in eval mode on the device it runs on; ``image`` is RGB uint8."""
    device = next(model.parameters()).device
    x = to_tensor(image, mean, std)[None].to(device)
    classes, probs = top_classes(model, x, top_k)
    with CAMExtractor(model, method=method, target_layer=target_layer) as ext:
        maps = ext(x, [classes])[0]
    maps = upsample_maps(normalize_maps(maps.clamp(min=0), mode="max"), image.shape[:2]).cpu().numpy()
    shown = [(str(class_names[c]), float(probs[c])) for c in classes]
    tiles = [image, *(overlay(image, m, alpha=alpha) for m in maps)]
    titles = ["image", *(f"{name} p={p:.2f} ({method})" for name, p in shown)]
    return grid(tiles, titles, ncols=len(tiles)), shown
