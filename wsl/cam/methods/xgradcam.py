"""XGrad-CAM (Fu et al., "Axiom-based Grad-CAM", BMVC 2020).

``w_k = sum_{i,j} (A_k[i,j] / (sum_{a,b} A_k[a,b] + eps)) g_k[i,j]`` (Eq. 9), map ``ReLU(sum_k w_k A_k)``.
eps = 1e-7 as in pytorch-grad-cam; an all-zero channel gets weight 0, not NaN.
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import Context, WeightedSum

EPS = 1e-7


class XGradCAM(WeightedSum):
    name = "xgradcam"

    def weights(self, ctx: Context) -> Tensor:
        g, a = ctx.gradients, ctx.activations
        assert g is not None and a is not None
        return (g * a[:, None]).sum((-2, -1)) / (a.sum((-2, -1))[:, None] + EPS)
