"""Smooth Grad-CAM++ (Omeiza et al., "Smooth Grad-CAM++: An Enhanced Inference Level Visualization
Technique for Deep Convolutional Neural Network Models", 2019): Grad-CAM++ with SmoothGrad's averaged
derivatives.

``samples`` noisy copies ``x + N(0, noise_std^2)`` of the (normalised) input; with ``g_m = dy_c/dA`` at
copy m and ``D_p = mean_m g_m^p``: ``alpha = D_2 / (2 D_2 + D_3 * sum_{a,b} A_k[a,b] + 1e-6)`` (0 where
``D_2 == 0``), ``w_k = sum_{i,j} alpha ReLU(D_1)`` and the map ``ReLU(sum_k w_k A_k)`` on the clean
image's ``A``. With one sample and no noise this is exactly ``gradcampp``.

Conventions (explicit, since the peer differs): the numerator is ``D_2`` as in Grad-CAM++ and in
torchcam's "corrected" ``SmoothGradCAMpp`` (the paper writes ``D_1``); torchcam's denominator sums
``D_3 * A`` over positions instead of multiplying ``D_3`` by the sum of ``A`` (Grad-CAM++'s Eq. 19), and
it takes the ReLU of the last noisy copy's gradient instead of the mean one; the three agree when the
gradient does not vary over positions and copies (a global-average-pooling head at its last layer),
which is where the test compares them. Noise is drawn from a generator seeded with ``seed`` at every
call, one ``(B, 3, H, W)`` draw per copy in order (torchcam's order), so a seed gives the same maps.
Defaults ``samples=4, noise_std=0.3`` are torchcam's. Cost: ``samples`` forward passes and batched
gradients of the layers after the target.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import generator, grads_of, regrad, reshaped_grads

EPS = 1e-6  # Grad-CAM++'s, as wsl's gradcampp


class SmoothGradCAMPlusPlus(WeightedSum):
    name = "smoothgradcampp"
    needs = "activations"

    def __init__(self, samples: int | None = None, noise_std: float | None = None, seed: int = 0) -> None:
        self.samples = 4 if samples is None else int(samples)
        self.std = 0.3 if noise_std is None else float(noise_std)
        if self.samples < 1 or self.std < 0:
            raise ValueError(
                f"smoothgradcampp needs samples >= 1 and noise_std >= 0, got {samples}, {noise_std}"
            )
        self.seed = int(seed)

    def weights(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        gen = generator(self.seed)
        images = ctx.images
        d1 = d2 = d3 = None
        for _ in range(self.samples):
            noise = torch.randn(images.shape, generator=gen, dtype=torch.float32) * self.std
            noisy = replace(ctx, images=images + noise.to(images.device, images.dtype))
            a_raw, _, scores = regrad(noisy)
            with torch.enable_grad():
                g = reshaped_grads(ctx, grads_of(scores, a_raw).detach())
            d1 = g if d1 is None else d1 + g
            d2 = g.pow(2) if d2 is None else d2 + g.pow(2)
            d3 = g.pow(3) if d3 is None else d3 + g.pow(3)
        assert d1 is not None and d2 is not None and d3 is not None
        d1, d2, d3 = d1 / self.samples, d2 / self.samples, d3 / self.samples
        a_sum = a.sum((-2, -1))[:, None, :, None, None]
        alpha = d2 / (2 * d2 + a_sum * d3 + EPS)
        alpha = torch.where(d2 != 0, alpha, torch.zeros_like(alpha))
        return (alpha * d1.clamp(min=0)).sum((-2, -1))
