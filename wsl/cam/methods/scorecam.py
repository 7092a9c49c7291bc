"""Score-CAM (Wang et al., CVPR Workshops 2020): forward passes only.

For every channel k: ``A_k`` upsampled to the input (bilinear, align_corners=True) and min-max scaled to
[0, 1] (pytorch-grad-cam's mask; torchcam normalises before upsampling instead), the input multiplied by
it, the class score of that masked input; the weights are the softmax of those C scores over the
channels (Eq. 5-7), the map ``ReLU(sum_k w_k A_k)``. One pass per (image, channel) gives the scores of
all K classes of the image; the masked inputs are forwarded ``batch_size`` at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.cam.base import Context, WeightedSum


class ScoreCAM(WeightedSum):
    name = "scorecam"
    needs = "activations"

    def weights(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        b, c = a.shape[:2]
        device = a.device
        rows = torch.arange(b, device=device).repeat_interleave(c)
        chans = torch.arange(c, device=device).repeat(b)
        scores = a.new_empty(b * c, ctx.index.shape[1])
        for start in range(0, b * c, ctx.batch_size):
            r, k = rows[start : start + ctx.batch_size], chans[start : start + ctx.batch_size]
            mask = F.interpolate(a[r, k][:, None], ctx.images.shape[-2:], mode="bilinear", align_corners=True)
            lo, hi = mask.amin((2, 3), keepdim=True), mask.amax((2, 3), keepdim=True)
            mask = (mask - lo) / (hi - lo + 1e-8)
            x = ctx.images[r] * mask.to(ctx.images.dtype)
            scores[start : start + len(r)] = ctx.forward_scores(x, r).float()
        return scores.view(b, c, -1).softmax(1).transpose(1, 2)
