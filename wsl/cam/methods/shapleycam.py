"""ShapleyCAM (Cai, "CAMs as Shapley Value-based Explainers", 2025): Grad-CAM's weights corrected by the
second-order term of a Taylor expansion of the class score around ``A``.

``w_k = mean_{i,j} (g - 0.5 * H A)_k[i, j]`` with ``g = dy_c/dA`` and ``H A`` the Hessian-vector product
of ``y_c`` at ``A`` along ``A`` itself; map ``ReLU(sum_k w_k A_k)`` (pytorch-grad-cam's ``ShapleyCAM``).
For a head that is piecewise linear in ``A`` (ReLU, max pooling, linear layers) ``H A = 0`` and the
method equals Grad-CAM. Both derivatives are batched over the K classes: the gradients are taken with
``create_graph``, then ``H_k A = d(g_k . A)/dA`` (``A`` held constant in the dot product) for all k in a
second batched backward. Cost: one more forward pass than Grad-CAM and a double backward of the layers
after the target.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import grads_of, regrad, reshaped_grads


class ShapleyCAM(WeightedSum):
    name = "shapleycam"
    needs = "activations"

    def weights(self, ctx: Context) -> Tensor:
        a_raw, _, scores = regrad(ctx)
        with torch.enable_grad():
            g = grads_of(scores, a_raw, create_graph=True)  # (K, B, ...)
            if g.requires_grad:
                along = (g * a_raw.detach()).flatten(2).sum(-1)  # (K, B): g_k . A per image
                hvp = grads_of(along.transpose(0, 1), a_raw)  # images are independent: row b only sees A_b
            else:  # no second-order path at all (e.g. a linear head)
                hvp = torch.zeros_like(g)
        corrected = reshaped_grads(ctx, (g - 0.5 * hvp).detach())
        return corrected.mean((-2, -1))
