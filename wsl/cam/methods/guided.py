"""Guided Backpropagation (Springenberg et al., ICLR Workshop 2015) and Guided Grad-CAM (Selvaraju 2017).

PIXEL maps ``(B, K, H, W)``: the guided gradient of the class score w.r.t. the input (ReLU backward
passing only positive gradients to positive inputs; the same rule at ReLU6, LeakyReLU, SiLU, GELU and
Hardswish, modules or functional calls: :mod:`wsl.cam.guided`, which refuses a model where no such
activation runs), reduced over RGB by the maximum absolute value.
Guided Grad-CAM multiplies it by the Grad-CAM map (ReLU, bilinear upsampling to the input, min-max to
[0, 1] as the original code and pytorch-grad-cam do). These are the one exception to "the gradient stops
at the target layer": they need a full backward to the pixels.

Warning: Guided Backprop fails the model-randomisation sanity check (Adebayo et al. 2018); it behaves
like an edge detector and changes little when the weights are randomised.
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import CAMMethod, Context
from wsl.cam.methods.gradcam import GradCAM
from wsl.cam.postprocess import normalize_maps, upsample_maps


class GuidedBackprop(CAMMethod):
    name = "guided_backprop"
    needs = "input"
    pixel = True

    def compute(self, ctx: Context) -> Tensor:
        assert ctx.input_gradients is not None
        return ctx.input_gradients.abs().amax(2)


class GuidedGradCAM(CAMMethod):
    name = "guided_gradcam"
    needs = "gradients"
    pixel = True

    def compute(self, ctx: Context) -> Tensor:
        cam = GradCAM().compute(ctx).clamp(min=0)
        cam = normalize_maps(upsample_maps(cam, ctx.images.shape[-2:]), mode="minmax")
        return ctx.guided_gradients().abs().amax(2).float() * cam
