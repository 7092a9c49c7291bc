"""Grad-CAM (Selvaraju et al., ICCV 2017): ``alpha_k = mean_{i,j} dy_c/dA_k[i,j]`` (Eq. 1),
map ``ReLU(sum_k alpha_k A_k)`` (Eq. 2; the ReLU is the extractor's)."""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import Context, WeightedSum


class GradCAM(WeightedSum):
    name = "gradcam"

    def weights(self, ctx: Context) -> Tensor:
        assert ctx.gradients is not None
        return ctx.gradients.mean((-2, -1))
