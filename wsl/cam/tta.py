"""Test-time aggregation of IRN (Ahn et al. 2019) and PSA (Ahn & Kwak 2018): scales x horizontal flip.

For each scale the batch is resized (bilinear, align_corners=False), the extractor runs on it and on its
mirror as ONE batch of 2B, every map is upsampled bilinearly to ``out_size``, the mirrored maps are
flipped back, and everything is SUMMED. Normalisation (IRN: each map by its own maximum + 1e-5) is left to
``normalize_maps``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.cam.postprocess import upsample_maps

Extractor = Callable[..., Tensor | list[Tensor]]


def multiscale_maps(
    extractor: Extractor,
    images: Tensor,
    classes: Tensor | Sequence[Sequence[int]] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = True,
    out_size: tuple[int, int] | None = None,
) -> Tensor | list[Tensor]:
    """Summed maps ``(B, K, *out_size)`` (a list of ``(K_i, *out_size)`` for ragged ``classes``).

    ``images`` ``(B, 3, H, W)``; ``out_size`` defaults to ``(H, W)``; a scale s runs the extractor at
    ``(round(H * s), round(W * s))``.
    """
    if not scales:
        raise ValueError("scales must name at least one scale")
    b, _, h, w = images.shape
    out_size = (h, w) if out_size is None else (int(out_size[0]), int(out_size[1]))
    ragged = classes is not None and not isinstance(classes, Tensor)
    if flip and classes is not None:
        classes = torch.cat([classes, classes]) if isinstance(classes, Tensor) else [*classes, *classes]
    total: list[Tensor] | None = None
    for scale in scales:
        size = (round(h * scale), round(w * scale))
        x = images if size == (h, w) else F.interpolate(images, size, mode="bilinear", align_corners=False)
        if flip:
            x = torch.cat([x, x.flip(-1)])
        maps = extractor(x, classes)
        maps = list(maps.unbind(0)) if isinstance(maps, Tensor) else list(maps)
        maps = [upsample_maps(m, out_size) for m in maps]
        if flip:
            maps = [maps[i] + maps[b + i].flip(-1) for i in range(b)]
        total = maps if total is None else [t + m for t, m in zip(total, maps)]
    assert total is not None
    return total if ragged else torch.stack(total)
