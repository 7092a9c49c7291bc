"""EigenGrad-CAM (pytorch-grad-cam's ``EigenGradCAM``): Eigen-CAM (Muhammad & Yeasin, IJCNN 2020) applied
to the class-specific terms ``g * A`` instead of ``A``.

Per (image, class), ``g_k * A_k`` reshaped to ``(h*w, C)``, each channel centred, projected on its first
right singular vector. The SVD sign is arbitrary (pytorch-grad-cam leaves it so); it is fixed so that the
map correlates positively with ``sum_k g_k * A_k`` (the signed HiResCAM map).
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import CAMMethod, Context
from wsl.cam.methods._common import first_component


class EigenGradCAM(CAMMethod):
    name = "eigengradcam"

    def compute(self, ctx: Context) -> Tensor:
        g, a = ctx.gradients, ctx.activations
        assert g is not None and a is not None
        b, k, c, h, w = g.shape
        x = (g * a[:, None]).reshape(b * k, c, h * w).transpose(1, 2)
        return first_component(x, x.sum(2)).view(b, k, h, w)
