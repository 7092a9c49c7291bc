"""KPCA-CAM (Karmani et al., "KPCA-CAM: Visual Explainability of Deep Computer Vision Models using Kernel
PCA", 2024): Eigen-CAM with kernel PCA, class-agnostic.

Per image, ``A`` reshaped to ``(h*w, C)`` with each channel centred; the kernel matrix of its rows
(``kernel``: sigmoid (default) ``tanh(gamma <x, y> + 1)``, rbf ``exp(-gamma |x - y|^2)``, poly
``(gamma <x, y> + 1)^3``, linear, cosine; ``gamma`` None = 1 / C, scikit-learn's defaults), centred in
feature space; the map is the first kernel principal component, ``u_1 sqrt(lambda_1)`` (scikit-learn's
``KernelPCA.fit_transform``, which pytorch-grad-cam's ``KPCA_CAM`` calls). The sign is fixed so that the
map correlates positively with the channel-mean map of ``A`` (as ``eigencam``; the peer leaves it to the
eigen-solver). The same map is returned for every requested class. Cost: one ``(h*w)^2`` eigenproblem
per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.cam.base import CAMMethod, Context

KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")


def kernel_matrix(x: Tensor, kernel: str, gamma: float) -> Tensor:
    """Kernel matrices ``(B, P, P)`` of rows ``x`` ``(B, P, C)``, as scikit-learn's ``pairwise_kernels``."""
    dot = x @ x.transpose(1, 2)
    if kernel == "linear":
        return dot
    if kernel == "sigmoid":
        return torch.tanh(gamma * dot + 1.0)
    if kernel == "poly":
        return (gamma * dot + 1.0) ** 3
    if kernel == "rbf":
        sq = x.pow(2).sum(-1)
        return torch.exp(-gamma * (sq[:, :, None] + sq[:, None, :] - 2 * dot).clamp(min=0))
    xn = F.normalize(x, dim=-1)
    return xn @ xn.transpose(1, 2)


class KPCACAM(CAMMethod):
    name = "kpcacam"
    needs = "activations"

    def __init__(self, kernel: str = "sigmoid", gamma: float | None = None) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"gamma must be > 0 or None, got {gamma!r}")
        self.kernel, self.gamma = kernel, gamma

    def compute(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        b, c, h, w = a.shape
        x = a.flatten(2).transpose(1, 2).double()  # (B, h*w, C): float64 for the eigenproblem
        xc = x - x.mean(1, keepdim=True)
        k = kernel_matrix(xc, self.kernel, 1.0 / c if self.gamma is None else float(self.gamma))
        scale = k.abs().amax((1, 2))
        k = k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)
        vals, vecs = torch.linalg.eigh(k)  # ascending
        # Activations equal at every position centre to a kernel of rounding noise: no component, a zero
        # map (as every other method gives for constant activations), not an eigenvector of the noise.
        top = torch.where(vals[:, -1] > 1e-9 * scale, vals[:, -1], torch.zeros_like(vals[:, -1]))
        proj = vecs[..., -1] * top[:, None].clamp(min=0).sqrt()
        mean_map = x.mean(2)
        corr = (proj * (mean_map - mean_map.mean(1, keepdim=True))).sum(1, keepdim=True)
        proj = torch.where(corr < 0, -proj, proj).float()
        return proj.view(b, 1, h, w).expand(b, ctx.index.shape[1], h, w).contiguous()
