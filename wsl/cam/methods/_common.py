"""Pieces shared by several methods of ``wsl.cam.methods``, built on the public parts of ``wsl.cam.base``.

- :func:`first_component`: the projection on the first principal component with a fixed sign (Eigen-CAM,
  EigenGrad-CAM, ``eigen_smooth``);
- :class:`EigenSmooth`: pytorch-grad-cam's ``eigen_smooth`` as a wrapper around any method whose map is a
  sum over channels of per-channel terms;
- :func:`aug_smooth`: pytorch-grad-cam's ``aug_smooth`` test-time augmentation, given one extraction;
- :func:`regrad`: a grad-enabled forward pass with the target layer as a leaf, for methods that need more
  than the extractor's batched first-order gradient (a custom score, second-order gradients);
- :func:`channel_scores`: the masked-input forward passes of the Score-CAM family, batched;
- :func:`generator`: the seeded random stream of the random methods.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from wsl.cam.base import CAMMethod, Context, TargetHook, WeightedSum, apply_reshape, model_logits
from wsl.cam.methods.hirescam import HiResCAM
from wsl.cam.methods.layercam import LayerCAM

Score = Literal["logit_softmax", "probability"]
SCORES: tuple[str, ...] = ("logit_softmax", "probability")
SCALE_EPS = 1e-7  # pytorch-grad-cam's scale_cam_image: (m - min) / (max(m - min) + 1e-7)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: draws are made on the CPU and moved to the model's device, so
    a seed gives the same numbers on every device."""
    return torch.Generator().manual_seed(int(seed))


def minmax(maps: Tensor, dims: int = 2) -> Tensor:
    """pytorch-grad-cam's per-map scaling over the last ``dims`` dims:
    ``(m - min) / (max(m - min) + 1e-7)``."""
    flat = maps.flatten(-dims)
    flat = flat - flat.amin(-1, keepdim=True)
    return (flat / (flat.amax(-1, keepdim=True) + SCALE_EPS)).view(maps.shape)


def first_component(x: Tensor, reference: Tensor) -> Tensor:
    """Rows ``x`` ``(N, P, C)`` (P positions, C features), centred per feature, projected on their first
    right singular vector: ``(N, P)``. The SVD's sign is arbitrary; it is fixed so that each projection
    correlates positively with ``reference`` ``(N, P)`` (a map the projection should agree with: the
    channel sum of the projected terms). pytorch-grad-cam's ``get_2d_projection`` is the same without the
    sign rule."""
    xc = x - x.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    proj = (xc @ vh[:, 0, :, None]).squeeze(-1)
    ref = reference - reference.mean(1, keepdim=True)
    return torch.where((proj * ref).sum(1, keepdim=True) < 0, -proj, proj)


def channel_terms(method: CAMMethod, ctx: Context) -> Tensor:
    """The per-channel terms ``(B, K, C, h, w)`` whose channel sum is ``method``'s map.

    ``w_k A_k`` for a weighted sum; ``g * A`` (HiResCAM), ``ReLU(g) * A`` (LayerCAM); a method may also
    define ``terms(ctx)`` itself. Raises ValueError for a method whose map is not such a sum."""
    if hasattr(method, "terms"):
        return method.terms(ctx)
    a = ctx.activations
    assert a is not None
    if isinstance(method, WeightedSum):
        return method.weights(ctx)[..., None, None] * a[:, None]
    if isinstance(method, HiResCAM | LayerCAM):
        assert ctx.gradients is not None
        g = ctx.gradients if isinstance(method, HiResCAM) else ctx.gradients.clamp(min=0)
        return g * a[:, None]
    raise ValueError(
        f"eigen_smooth does not apply to method {method.name!r}: its map is not a sum over channels"
    )


def supports_eigen_smooth(method: CAMMethod) -> bool:
    return hasattr(method, "terms") or isinstance(method, WeightedSum | HiResCAM | LayerCAM)


class EigenSmooth(CAMMethod):
    """pytorch-grad-cam's ``eigen_smooth``: the first principal component of the per-channel terms of the
    wrapped method (``w_k A_k`` for weighted sums) instead of their sum (Muhammad & Yeasin 2020's
    projection applied to class-specific terms), per (image, class), with the sign rule of
    :func:`first_component` against the unsmoothed map."""

    pixel = False

    def __init__(self, inner: CAMMethod) -> None:
        if inner.pixel or not supports_eigen_smooth(inner):
            raise ValueError(
                f"eigen_smooth does not apply to method {inner.name!r}: its map is not a sum over channels"
            )
        self.inner = inner
        self.name = inner.name
        self.needs = inner.needs  # no observe(): CAM, the one method with hooks of its own, is refused

    def compute(self, ctx: Context) -> Tensor:
        terms = channel_terms(self.inner, ctx)  # (B, K, C, h, w)
        b, k, c, h, w = terms.shape
        x = terms.reshape(b * k, c, h * w).transpose(1, 2)
        return first_component(x, x.sum(2)).view(b, k, h, w)


# pytorch-grad-cam's default tta_transforms: ttach's HorizontalFlip x Multiply(0.9, 1, 1.1)
AUG_FLIPS = (False, True)
AUG_FACTORS = (0.9, 1.0, 1.1)


def aug_smooth(
    run: Callable[[Tensor, Tensor | None], Tensor], images: Tensor, mask: Tensor | None = None
) -> Tensor:
    """pytorch-grad-cam's ``aug_smooth``: the mean over 6 augmentations (horizontal flip or not, times the
    pixel factors 0.9, 1, 1.1) of each augmentation's maps scaled to [0, 1] per map, flipped back.

    ``run(x, mask)`` returns the maps ``(B, K, h, w)`` of one ordinary extraction of ``x`` (after the final
    ReLU); a segmentation ``mask`` is flipped with the image. Convention: each map is scaled at the target
    layer's resolution; pytorch-grad-cam scales after resizing to the input (equal when the layer has the
    input's resolution, and within interpolation error otherwise)."""
    total: Tensor | None = None
    for flip in AUG_FLIPS:
        for factor in AUG_FACTORS:
            x = images * factor
            m = mask
            if flip:
                x = x.flip(-1)
                m = None if mask is None else mask.flip(-1)
            maps = minmax(run(x, m).float())
            maps = maps.flip(-1) if flip else maps
            total = maps if total is None else total + maps
    assert total is not None
    return total / (len(AUG_FLIPS) * len(AUG_FACTORS))


def regrad(ctx: Context, score: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Forward ``ctx.images`` with grad enabled and the target layer's output as a leaf ``A``.

    Returns ``(A, logits, scores)``: ``A`` the raw layer output (requires grad; nothing below it records
    a graph), ``scores`` ``(B, K)`` = ``score(logits)`` (default: the context's class scores), zero for
    padded classes. Costs one forward pass on top of the extractor's capture pass."""
    assert ctx.layer is not None
    rows = torch.arange(ctx.images.shape[0], device=ctx.images.device)
    with torch.enable_grad(), TargetHook(ctx.layer, "leaf") as hook:
        logits = model_logits(ctx.model(ctx.images))
        scores = (ctx.row_scores(logits, rows) if score is None else score(logits)) * ctx.valid
    assert hook.captured is not None
    return hook.captured, logits, scores


def grads_of(scores: Tensor, inputs: Tensor, create_graph: bool = False) -> Tensor:
    """``(K, *inputs.shape)``: the gradient of ``scores[:, k].sum()`` for every k, in one batched backward
    (one backward per class where an op has no batching rule). ``create_graph`` keeps the graph of the
    gradients (for a second derivative)."""
    n, k = scores.shape
    if k == 0:
        return inputs.new_zeros((0, *inputs.shape))
    eye = torch.eye(k, dtype=scores.dtype, device=scores.device)[:, None, :].expand(k, n, k)
    try:
        return torch.autograd.grad(
            scores, inputs, grad_outputs=eye, retain_graph=True, create_graph=create_graph,
            is_grads_batched=True, allow_unused=True, materialize_grads=True,
        )[0]  # fmt: skip
    except (RuntimeError, NotImplementedError) as err:
        warnings.warn(f"batched gradient failed, one backward per class instead: {err}", stacklevel=2)
    return torch.stack(
        [
            torch.autograd.grad(
                scores[:, j].sum(),
                inputs,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
                materialize_grads=True,
            )[0]  # fmt: skip
            for j in range(k)
        ]
    )


def reshaped_grads(ctx: Context, grads: Tensor) -> Tensor:
    """Gradients ``(K, B, ...)`` of the raw layer output -> ``(B, K, C, h, w)`` as ``ctx.gradients``."""
    return apply_reshape(ctx.reshape_transform, grads, lead=2).transpose(0, 1).float()


def score_masks(a: Tensor, size: tuple[int, int]) -> Tensor:
    """Score-CAM's masks of channels ``a`` ``(N, h, w)``: upsampled to ``size`` (bilinear,
    align_corners=True) then min-max scaled to [0, 1] (pytorch-grad-cam's convention; torchcam scales at
    the layer's resolution and upsamples with align_corners=False: equal when the layer has the input's
    resolution). ``(N, 1, H, W)``."""
    up = F.interpolate(a[:, None], size, mode="bilinear", align_corners=True)
    lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
    return (up - lo) / (hi - lo + 1e-8)


def channel_scores(
    ctx: Context,
    masked: Callable[[Tensor, Tensor, Tensor, int], Tensor],
    passes: int = 1,
    score: Score = "logit_softmax",
) -> Tensor:
    """Class scores ``(B, C, K)`` of masked inputs, one per (image, channel), averaged over ``passes``.

    ``masked(rows, chans, masks, p)`` returns the inputs ``(n, 3, H, W)`` of pass ``p`` for images
    ``rows`` and channels ``chans`` with their Score-CAM ``masks`` ``(n, 1, H, W)``. Inputs are forwarded
    ``ctx.batch_size`` at a time, in (pass, image, channel) order; one forward gives all K classes of the
    image. ``score="probability"`` scores the softmax over classes of the logits (the Score-CAM paper's
    official code) instead of the raw logit."""
    a = ctx.activations
    assert a is not None
    b, c = a.shape[:2]
    device = a.device
    rows = torch.arange(b, device=device).repeat_interleave(c)
    chans = torch.arange(c, device=device).repeat(b)
    total = a.new_zeros(b * c, ctx.index.shape[1])
    for p in range(passes):
        for start in range(0, b * c, ctx.batch_size):
            r, k = rows[start : start + ctx.batch_size], chans[start : start + ctx.batch_size]
            x = masked(r, k, score_masks(a[r, k], tuple(ctx.images.shape[-2:])), p)
            with torch.no_grad():
                logits = model_logits(ctx.model(x.to(ctx.images.dtype)))
                if score == "probability":
                    logits = logits.float().softmax(1)
                total[start : start + len(r)] += ctx.row_scores(logits, r).float()
    return (total / passes).view(b, c, -1)


def score_weights(scores: Tensor, score: Score) -> Tensor:
    """Channel weights ``(B, K, C)`` from the masked-input scores ``(B, C, K)``: the softmax over channels
    of the logits (``logit_softmax``: pytorch-grad-cam, torchcam) or the class probabilities themselves
    (``probability``: the Score-CAM paper's code, ``saliency += softmax(f(X * H_k))_c * A_k``)."""
    if score == "probability":
        return scores.transpose(1, 2)
    return scores.softmax(1).transpose(1, 2)


def check_score(score: str) -> Score:
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    return score  # type: ignore[return-value]
