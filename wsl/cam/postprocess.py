"""Post-processing of CAMs, kept apart from their computation: per-map normalisation and upsampling.

Both take a tensor whose last two dims are the map, ``(..., h, w)``, or a list of such tensors (the
ragged output of ``CAMExtractor``), and never modify their input.
"""

from __future__ import annotations

from typing import Literal, overload

import torch.nn.functional as F
from torch import Tensor


@overload
def normalize_maps(maps: Tensor, mode: Literal["max", "minmax"] = "max", eps: float = 1e-5) -> Tensor: ...
@overload
def normalize_maps(
    maps: list[Tensor], mode: Literal["max", "minmax"] = "max", eps: float = 1e-5
) -> list[Tensor]: ...
def normalize_maps(
    maps: Tensor | list[Tensor], mode: Literal["max", "minmax"] = "max", eps: float = 1e-5
) -> Tensor | list[Tensor]:
    """Scale every map ``(..., h, w)`` on its own.

    ``"max"``: ``m / (max(m) + eps)``, IRN's normalisation of non-negative maps (a map whose maximum is
    <= 0 is divided by ``eps`` alone). ``"minmax"``: ``(m - min) / (max - min)``, exactly in [0, 1].
    A constant map (an all-zero one included) becomes zeros; the result is never NaN for finite input.
    """
    if isinstance(maps, list):
        return [normalize_maps(m, mode, eps) for m in maps]
    if mode == "max":
        return maps / (maps.amax((-2, -1), keepdim=True).clamp(min=0) + eps)
    if mode == "minmax":
        lo, hi = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
        span = hi - lo
        return (maps - lo) / span.masked_fill(span <= 0, 1.0)
    raise ValueError(f"mode must be 'max' or 'minmax', not {mode!r}")


@overload
def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor: ...
@overload
def upsample_maps(maps: list[Tensor], size: tuple[int, int]) -> list[Tensor]: ...
def upsample_maps(maps: Tensor | list[Tensor], size: tuple[int, int]) -> Tensor | list[Tensor]:
    """Bilinear resize (align_corners=False, as cv2.INTER_LINEAR when enlarging) of ``(..., h, w)`` to
    ``(..., *size)``."""
    if isinstance(maps, list):
        return [upsample_maps(m, size) for m in maps]
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps.clone()
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    if flat.shape[0] == 0:
        return maps.new_zeros((*lead, *size))
    out = F.interpolate(flat.float(), size=size, mode="bilinear", align_corners=False)
    return out.to(maps.dtype).reshape(*lead, *size)
