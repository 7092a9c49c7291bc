"""Drawing helpers for users' own images: colour maps, overlays, boxes and panels (NumPy uint8, no display).

Images are ``(H, W, 3)`` uint8 RGB (``(H, W)`` grey is accepted); maps are ``(h, w)`` floats in [0, 1]
(tensors are moved to the CPU). No function modifies its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
Color = tuple[int, int, int]


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _rgb(image: ArrayLike) -> np.ndarray:
    img = _numpy(image)
    if img.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img.copy()
    raise ValueError(f"images must be (H, W, 3) or (H, W), got {img.shape}")


def colorize(map_hw: ArrayLike, cmap: str = "jet") -> np.ndarray:
    """``(h, w)`` map, values clipped to [0, 1] (NaN as 0) -> ``(h, w, 3)`` uint8 RGB with an OpenCV colormap
    (``jet``, ``turbo``, ``viridis``, ``inferno``, ``magma``, ``plasma``, ``hot``, ...)."""
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}", None)
    if code is None:
        raise ValueError(f"unknown colormap {cmap!r}")
    m = np.nan_to_num(_numpy(map_hw).astype(np.float32), nan=0.0)
    if m.ndim != 2:
        raise ValueError(f"a map must be (h, w), got {m.shape}")
    gray = np.round(np.clip(m, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, code), cv2.COLOR_BGR2RGB)


def overlay(image: ArrayLike, map_hw: ArrayLike, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The coloured map blended over ``image``: ``(1 - alpha) * image + alpha * colour``, uint8 ``(H, W, 3)``.

    The map is resized bilinearly to the image when their sizes differ.
    """
    img = _rgb(image)
    m = _numpy(map_hw).astype(np.float32)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = colorize(m, cmap).astype(np.float32)
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * heat
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def draw_boxes(
    image: ArrayLike,
    boxes: ArrayLike,
    color: Color = (255, 0, 0),
    labels: Sequence[str] | None = None,
    thickness: int = 2,
) -> np.ndarray:
    """A copy of ``image`` with boxes ``(N, 4)`` ``(x0, y0, x1, y1)``, inclusive pixel coordinates, drawn in
    ``color`` (RGB), each with its label (if given) above its top-left corner."""
    img = np.ascontiguousarray(_rgb(image))
    b = _numpy(boxes).reshape(-1, 4)
    if labels is not None and len(labels) != len(b):
        raise ValueError(f"{len(labels)} labels for {len(b)} boxes")
    for i, (x0, y0, x1, y1) in enumerate(np.round(b).astype(int).tolist()):
        cv2.rectangle(img, (x0, y0), (x1, y1), tuple(int(c) for c in color), thickness)
        if labels is not None:
            org = (x0, max(y0 - 4, 10))
            cv2.putText(
                img, str(labels[i]), org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, tuple(int(c) for c in color), 1
            )
    return img


def grid(
    images: Sequence[ArrayLike], titles: Sequence[str] | None = None, ncols: int = 4, pad: int = 4
) -> np.ndarray:
    """One uint8 RGB panel of ``images`` in rows of ``ncols``, each cell sized to the largest image, with
    an optional title bar above each."""
    if not images:
        raise ValueError("grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    tiles = [_rgb(im) for im in images]
    ch, cw = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    bar = 16 if titles is not None else 0
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    panel = np.full((nrows * (ch + bar + pad) + pad, ncols * (cw + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        y = pad + (i // ncols) * (ch + bar + pad)
        x = pad + (i % ncols) * (cw + pad)
        if titles is not None:
            cv2.putText(panel, str(titles[i]), (x, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        panel[y + bar : y + bar + tile.shape[0], x : x + tile.shape[1]] = tile
    return panel
