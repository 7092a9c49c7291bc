"""Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``; the element-wise product of
HiResCAM, Draelos & Carin 2020, with a ReLU on each term): ``sum_k ReLU(g_k * A_k)``.

Unlike HiResCAM, a location where a channel's gradient and activation disagree in sign cannot cancel
another channel's positive evidence; the map is non-negative before the final ReLU.
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import CAMMethod, Context


class GradCAMElementWise(CAMMethod):
    name = "gradcam_elementwise"

    def terms(self, ctx: Context) -> Tensor:
        """Per-channel terms ``(B, K, C, h, w)`` (what ``eigen_smooth`` projects)."""
        assert ctx.gradients is not None and ctx.activations is not None
        return (ctx.gradients * ctx.activations[:, None]).clamp(min=0)

    def compute(self, ctx: Context) -> Tensor:
        return self.terms(ctx).sum(2)
