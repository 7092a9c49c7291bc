"""Random-CAM (pytorch-grad-cam's ``RandomCAM``): a baseline, ``sum_k w_k A_k`` with channel weights drawn
uniformly from [-1, 1], independently per (image, class).

A method that does no better than this on a metric tells nothing through that metric. The weights come
from a generator seeded with ``seed`` at every call (drawn on the CPU, then moved to the model's
device): the same images and classes give the same maps, on any device. pytorch-grad-cam draws from
NumPy's global generator, unseeded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import generator


class RandomCAM(WeightedSum):
    name = "randomcam"
    needs = "activations"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def weights(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        shape = (a.shape[0], ctx.index.shape[1], a.shape[1])
        w = torch.rand(shape, generator=generator(self.seed), dtype=torch.float32) * 2 - 1
        return w.to(a.device)
