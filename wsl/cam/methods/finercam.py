"""Finer-CAM (Zhang et al., "Finer-CAM: Spotting the Difference Reveals Finer Details for Visual
Explanation", CVPR 2025): explain what separates class c from the classes the model finds most similar.

For each requested class c of an image, the comparison classes J are those ranked ``compare`` (default
1, 2, 3) when all classes are sorted by ``|y_j - y_c|`` (rank 0 is c itself), and the explained score is
``s = sum_{j in J} p_j (y_c - alpha y_j) / (sum_{j in J} p_j + 1e-9)`` with ``p`` the softmax of the
logits (pytorch-grad-cam's ``FinerWeightedTarget``; the gradient flows through ``p`` too). The map is
the ``base`` method (default Grad-CAM; any gradient method) with ``dy_c/dA`` replaced by ``ds/dA``.
``alpha = 0`` gives back the base method on ``y_c`` (to within the 1e-9); ``alpha = 1`` is the paper's
setting. pytorch-grad-cam explains only the top-1 class unless given targets;
here every requested class has its own comparison set, all from one forward and one batched gradient.
Classifier outputs ``(B, C)`` only. Cost: one more forward pass than the base method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from wsl.cam.base import CAMMethod, Context
from wsl.cam.methods._common import channel_terms, grads_of, regrad, reshaped_grads
from wsl.cam.methods.gradcam import GradCAM
from wsl.cam.methods.gradcampp import GradCAMPlusPlus
from wsl.cam.methods.hirescam import HiResCAM
from wsl.cam.methods.layercam import LayerCAM
from wsl.cam.methods.xgradcam import XGradCAM

BASES: dict[str, type[CAMMethod]] = {
    m.name: m for m in (GradCAM, HiResCAM, GradCAMPlusPlus, XGradCAM, LayerCAM)
}

EPS = 1e-9


def finer_scores(logits: Tensor, index: Tensor, ranks: Sequence[int], alpha: float) -> Tensor:
    """Scores ``(B, K)`` of classes ``index`` ``(B, K)`` against their comparison classes (ranks by
    ``|y_j - y_c|``, rank 0 being c)."""
    ranks = [int(r) for r in ranks if int(r) < logits.shape[1]]
    y = logits.gather(1, index)  # (B, K)
    if not ranks:
        return y * 0
    order = (logits.detach()[:, None, :] - y.detach()[:, :, None]).abs().argsort(dim=-1, stable=True)
    comp = order[..., ranks]  # (B, K, R)
    b, k, r = comp.shape
    p = logits.softmax(1).gather(1, comp.flatten(1)).view(b, k, r)
    yj = logits.gather(1, comp.flatten(1)).view(b, k, r)
    return (p * (y[..., None] - alpha * yj)).sum(-1) / (p.sum(-1) + EPS)


class FinerCAM(CAMMethod):
    name = "finercam"
    needs = "activations"

    def __init__(
        self, finer_alpha: float = 1.0, finer_compare: Sequence[int] = (1, 2, 3), finer_base: str = "gradcam"
    ) -> None:
        self.alpha = float(finer_alpha)
        self.ranks = [int(r) for r in finer_compare]
        if not self.ranks or min(self.ranks) < 1:
            raise ValueError(f"finer_compare must list ranks >= 1 (0 is the class itself), got {self.ranks}")
        if finer_base not in BASES:
            raise ValueError(f"finer_base must be one of {', '.join(BASES)}; got {finer_base!r}")
        self.base = BASES[finer_base]()

    def _with_finer_gradients(self, ctx: Context) -> Context:
        """``ctx`` whose gradients are those of the Finer-CAM score."""
        if ctx.logits.ndim != 2:
            raise ValueError(
                "method 'finercam' compares classifier scores (B, C); this model is a segmentation model"
            )
        a_raw, _, scores = regrad(ctx, lambda logits: finer_scores(logits, ctx.index, self.ranks, self.alpha))
        with torch.enable_grad():
            grads = grads_of(scores, a_raw)
        return replace(ctx, gradients=reshaped_grads(ctx, grads.detach()), scores=scores.detach())

    def terms(self, ctx: Context) -> Tensor:
        """The base method's per-channel terms (what ``eigen_smooth`` projects)."""
        return channel_terms(self.base, self._with_finer_gradients(ctx))

    def compute(self, ctx: Context) -> Tensor:
        return self.base.compute(self._with_finer_gradients(ctx))
