"""Grad-CAM++ (Chattopadhyay et al., WACV 2018) with the plain gradient ``g = dy_c/dA``.

Eq. 19 with the exponential's derivatives replaced by powers of ``g``:
``alpha = g^2 / (2 g^2 + g^3 * sum_{a,b} A_k[a,b] + 1e-6)`` (0 where ``g == 0``), weights
``w_k = sum_{i,j} alpha ReLU(g)`` (Eq. 7), map ``ReLU(sum_k w_k A_k)``. The 1e-6 is pytorch-grad-cam's;
with small gradients it dominates the denominator, so it is kept to match that reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum

EPS = 1e-6


class GradCAMPlusPlus(WeightedSum):
    name = "gradcampp"

    def weights(self, ctx: Context) -> Tensor:
        g, a = ctx.gradients, ctx.activations
        assert g is not None and a is not None
        g2 = g.pow(2)
        a_sum = a.sum((-2, -1))[:, None, :, None, None]
        alpha = g2 / (2 * g2 + a_sum * g2 * g + EPS)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        return (alpha * g.clamp(min=0)).sum((-2, -1))
