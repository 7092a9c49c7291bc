"""LayerCAM (Jiang et al., IEEE TIP 2021): ``ReLU(sum_k ReLU(g_k) * A_k)``, element-wise (Eq. 5-6)."""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import CAMMethod, Context


class LayerCAM(CAMMethod):
    name = "layercam"

    def compute(self, ctx: Context) -> Tensor:
        assert ctx.gradients is not None and ctx.activations is not None
        return (ctx.gradients.clamp(min=0) * ctx.activations[:, None]).sum(2)
