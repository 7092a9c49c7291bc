"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): forward passes of the layers after the target only.

``w_k = (y_c - y_c^k) / y_c`` where ``y_c^k`` is the class score with channel k of ``A`` set to zero
(Eq. 2), map ``ReLU(sum_k w_k A_k)``. ``A`` is captured once; for each image, ``batch_size`` ablated
copies of it at a time replace the target layer's output while the layers below run on that single image
(see ``Context.forward_replaced`` for the cost). Channels are zeroed as in the paper; pytorch-grad-cam
instead writes ``min(A) - 1e7`` when ``A`` has negative values, so the two agree when ``min(A) == 0``
(after a ReLU). With a ``reshape_transform`` the channel is the last dim of the layer's output (tokens
``(B, N, D)``), zeroed in every token as pytorch-grad-cam's ``AblationLayerVit`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum

EPS = 1e-7


class AblationCAM(WeightedSum):
    name = "ablationcam"
    needs = "activations"

    def weights(self, ctx: Context) -> Tensor:
        raw = ctx.raw_activations
        assert raw is not None
        dim = 1 if ctx.reshape_transform is None else raw.ndim - 1
        b, c, k = raw.shape[0], raw.shape[dim], ctx.index.shape[1]
        ablated = torch.empty(b, c, k, device=raw.device)
        for i in range(b):
            for start in range(0, c, ctx.batch_size):
                chans = torch.arange(start, min(start + ctx.batch_size, c), device=raw.device)
                rows = raw[i : i + 1].repeat(len(chans), *[1] * (raw.ndim - 1))
                rows.movedim(dim, 1)[torch.arange(len(chans), device=raw.device), chans] = 0
                ablated[i, start : start + len(chans)] = ctx.forward_replaced(i, rows).float()
        y = ctx.scores.float()[:, None, :]
        drop = (y - ablated) / torch.copysign(y.abs().clamp(min=EPS), y)
        return drop.transpose(1, 2)
