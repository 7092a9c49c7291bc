"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): class-agnostic first principal component of ``A``.

Per image, ``A`` reshaped to ``(h*w, C)`` with each channel centred, projected on its first right
singular vector (Eq. 4-5). The SVD sign is arbitrary; it is fixed so that the map correlates positively
with the channel-mean map of ``A`` (pytorch-grad-cam's ``get_2d_projection`` leaves it arbitrary). The
same map is returned for every requested class.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wsl.cam.base import CAMMethod, Context


class EigenCAM(CAMMethod):
    name = "eigencam"
    needs = "activations"

    def compute(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        b, _, h, w = a.shape
        x = a.flatten(2).transpose(1, 2)  # (B, h*w, C)
        xc = x - x.mean(1, keepdim=True)
        _, _, vh = torch.linalg.svd(xc, full_matrices=False)
        proj = (xc @ vh[:, 0, :, None]).squeeze(-1)  # (B, h*w)
        mean_map = x.mean(2)
        corr = (proj * (mean_map - mean_map.mean(1, keepdim=True))).sum(1, keepdim=True)
        proj = torch.where(corr < 0, -proj, proj)
        return proj.view(b, 1, h, w).expand(b, ctx.index.shape[1], h, w).contiguous()
