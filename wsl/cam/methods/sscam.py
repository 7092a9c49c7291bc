"""SS-CAM (Wang, Naidu et al., "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature Localization",
2020): Score-CAM whose channel scores are averaged over noisy masks.

For ``samples`` passes, every Score-CAM mask (see ``scorecam``) gets Gaussian noise ``N(0, noise_std^2)``
at the input's resolution (the masks are not rescaled after it), the input is multiplied by the noisy
mask and scored; the weights come from the scores averaged over the passes (softmax over channels for
``score=logit_softmax``, torchcam's ``SSCAM``; the class probability for ``probability``). With one pass
and no noise this is exactly ``scorecam``. Masks follow wsl's Score-CAM (upsample then scale; torchcam
scales then upsamples: equal when the layer has the input's resolution). Noise comes from a generator
seeded with ``seed`` at every call, drawn per pass in (image, channel) order as torchcam's
``(B, C, H, W)`` draw; defaults ``samples=35, noise_std=2.0`` are torchcam's. Cost: ``samples`` times
Score-CAM's ``C`` masked forward passes per image.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import channel_scores, check_score, generator, score_weights


class SSCAM(WeightedSum):
    name = "sscam"
    needs = "activations"

    def __init__(
        self,
        samples: int | None = None,
        noise_std: float | None = None,
        seed: int = 0,
        score: str = "logit_softmax",
    ) -> None:
        self.samples = 35 if samples is None else int(samples)
        self.std = 2.0 if noise_std is None else float(noise_std)
        if self.samples < 1 or self.std < 0:
            raise ValueError(f"sscam needs samples >= 1 and noise_std >= 0, got {samples}, {noise_std}")
        self.seed, self.score = int(seed), check_score(score)

    def weights(self, ctx: Context) -> Tensor:
        gen = generator(self.seed)

        def masked(rows: Tensor, chans: Tensor, masks: Tensor, p: int) -> Tensor:
            noise = torch.randn(masks.shape, generator=gen, dtype=torch.float32) * self.std
            return ctx.images[rows] * (masks + noise.to(masks.device, masks.dtype))

        scores = channel_scores(ctx, masked, passes=self.samples, score=self.score)
        return score_weights(scores, self.score)
