"""Maps of several target layers combined into one, as pytorch-grad-cam does with a list of layers.

pytorch-grad-cam 1.5.7 (``BaseCAM.compute_cam_per_layer`` and ``aggregate_multi_layers``): each layer's
map gets the ReLU, is min-max scaled on its own (``(m - min) / (max - min + 1e-7)``, ``scale_cam_image``)
and resized (cv2 bilinear, which is torch's ``align_corners=False`` when enlarging) to the input size;
the layers' maps are averaged (after another ReLU, a no-op on maps in [0, 1]) and the mean is min-max
scaled again. Here the common size is the largest layer's map by default (``"largest"``: the maps stay
at feature resolution, like a single layer's, and are upsampled once later) or the input size
(``"input"``: pytorch-grad-cam's choice, for an exact comparison). The final min-max is left to
:func:`~wsl.cam.normalize_maps`, as for one layer: the combined map is in [0, 1] already.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

EPS = 1e-7  # pytorch-grad-cam's scale_cam_image


def scale_maps(maps: Tensor) -> Tensor:
    """``(m - min) / (max - min + 1e-7)`` per map ``(..., h, w)`` (pytorch-grad-cam's ``scale_cam_image``)."""
    lo = maps.amin((-2, -1), keepdim=True)
    shifted = maps - lo
    return shifted / (shifted.amax((-2, -1), keepdim=True) + EPS)


def largest_size(maps: Sequence[Tensor]) -> tuple[int, int]:
    """The ``(h, w)`` of the map with the most positions (the first of equals)."""
    return max((tuple(m.shape[-2:]) for m in maps), key=lambda hw: hw[0] * hw[1])


def combine_layer_maps(maps: Sequence[Tensor], size: tuple[int, int], relu: bool = True) -> Tensor:
    """The mean over layers of each layer's map ``(B, K, h_l, w_l)`` (ReLU'd when ``relu``), min-max
    scaled and resized (bilinear, align_corners=False) to ``size``: ``(B, K, *size)`` in [0, 1]."""
    if not maps:
        raise ValueError("no layer maps to combine")
    size = (int(size[0]), int(size[1]))
    total = None
    for m in maps:
        m = m.float()
        if relu:
            m = m.clamp(min=0)
        m = scale_maps(m)
        if tuple(m.shape[-2:]) != size:
            lead = m.shape[:-2]
            flat = m.reshape(-1, 1, *m.shape[-2:])
            if flat.shape[0]:
                flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
            m = flat.reshape(*lead, *size) if flat.shape[0] else m.new_zeros((*lead, *size))
        total = m if total is None else total + m
    assert total is not None
    return (total / len(maps)).clamp(min=0)
