"""HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM...", 2020).

``sum_k g_k * A_k`` element-wise, no spatial averaging of the gradient (Eq. 4). For a head that is
flatten + one linear layer, the signed map summed over positions equals ``y_c`` minus the bias: it shows
only locations the model used.
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import CAMMethod, Context


class HiResCAM(CAMMethod):
    name = "hirescam"

    def compute(self, ctx: Context) -> Tensor:
        assert ctx.gradients is not None and ctx.activations is not None
        return (ctx.gradients * ctx.activations[:, None]).sum(2)
