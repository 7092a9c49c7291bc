"""Faithfulness of saliency maps: deletion / insertion (RISE) and Average Drop / Increase.

Inputs are (image, class) *pairs*: ``images`` ``(N, C, H, W)`` in the model's input space (already
normalised), ``classes`` ``(N,)`` and ``maps`` ``(N, h, w)`` (upsampled bilinearly to ``H x W``
when smaller). ``score_fn(images) -> (B, K)`` returns class probabilities (e.g.
``lambda x: model(x).softmax(1)``, or ``.sigmoid()`` for multi-label heads); it is called under
``torch.no_grad()`` on batches of at most ``batch_size`` images. Maps with NaN / inf raise
``ValueError``; no input is modified.

* Deletion / insertion (Petsiuk et al., BMVC 2018, "RISE"): order the pixels by the map
  (descending; ties by position), then in ``n_steps`` equal steps replace the top pixels by the
  baseline (deletion, starting from the image) or copy them from the image onto the baseline
  (insertion, starting from the baseline); the class probability after each step gives a curve
  over ``x = k / n_steps``; its trapezoid area is the score. Lower deletion and higher insertion
  AUC are better. RISE's baselines: zeros for deletion, a Gaussian blur of the image (kernel 11,
  sigma 5) for insertion.
* Average Drop / Increase in Confidence (Chattopadhyay et al., WACV 2018, "Grad-CAM++"): with
  ``Y`` the class probability on the image and ``O`` on the image multiplied by the min-max
  normalised map (a constant map becomes zeros), ``drop = max(0, Y - O) / Y`` (mean over pairs) and
  increase = the fraction of pairs with ``O > Y``; both fractions in [0, 1] (the paper prints
  percent). A pair with ``Y == 0`` raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["average_drop_increase", "blur", "deletion_insertion"]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def _check(images: torch.Tensor, classes, maps: torch.Tensor):
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    classes = torch.as_tensor(classes, dtype=torch.long, device=images.device).reshape(-1)
    maps = torch.as_tensor(maps, device=images.device)
    if maps.ndim != 3 or maps.shape[0] != images.shape[0] or classes.numel() != images.shape[0]:
        raise ValueError("need one class and one (h, w) map per image: classes (N,), maps (N, h, w)")
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf")
    maps = maps.to(images.dtype)
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[
            :, 0
        ]
    return classes, maps


def blur(images: torch.Tensor, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur per channel (RISE's insertion baseline), reflect padding; same shape."""
    x = torch.arange(kernel, dtype=images.dtype, device=images.device) - (kernel - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    c = images.shape[1]
    pad = F.pad(images, [kernel // 2] * 4, mode="reflect")
    out = F.conv2d(pad, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _probs(score_fn: ScoreFn, images: torch.Tensor, classes: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            p = score_fn(images[i : i + batch_size])
            out.append(p.gather(1, classes[i : i + batch_size, None])[:, 0].float())
    return torch.cat(out)


def deletion_insertion(
    score_fn: ScoreFn,
    images: torch.Tensor,
    classes,
    maps,
    mode: Literal["deletion", "insertion"] = "deletion",
    n_steps: int = 50,
    baseline: Literal["zeros", "blur"] | torch.Tensor | None = None,
    batch_size: int = 64,
) -> dict:
    """Deletion or insertion curve and AUC per (image, class) pair.

    Args:
        score_fn: images ``(B, C, H, W)`` -> probabilities ``(B, K)``.
        images, classes, maps: ``(N, C, H, W)``, ``(N,)``, ``(N, h, w)``.
        mode: ``"deletion"`` or ``"insertion"``.
        n_steps: number of equal steps; the curve has ``n_steps + 1`` points, step ``k`` changes
            the ``round(k * H * W / n_steps)`` top pixels (all channels).
        baseline: ``"zeros"``, ``"blur"`` or a tensor broadcastable to ``images``; None = RISE's
            choice (zeros for deletion, blur for insertion).
        batch_size: images per ``score_fn`` call; the ``N * (n_steps + 1)`` step images are
            built and scored ``batch_size`` at a time.

    Returns:
        ``{"auc": (N,), "curves": (N, n_steps + 1), "mean": float}`` (CPU float tensors).
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    classes, maps = _check(images, classes, maps)
    n, _, h, w = images.shape
    base = baseline if baseline is not None else ("zeros" if mode == "deletion" else "blur")
    if isinstance(base, str):
        if base not in ("zeros", "blur"):
            raise ValueError(f"unknown baseline {base!r}")
        base = torch.zeros_like(images) if base == "zeros" else blur(images)
    base = torch.broadcast_to(base.to(images), images.shape)
    start, end = (images, base) if mode == "deletion" else (base, images)
    # rank[i, p] = position of pixel p in the descending order of map i (stable on ties)
    order = torch.sort(maps.reshape(n, -1), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))
    counts = torch.round(torch.arange(n_steps + 1, dtype=torch.float64) * (h * w) / n_steps).long()
    # every (pair, step) is one image; batches of `batch_size` of them, step-major within a pair
    jobs_pair = torch.arange(n).repeat_interleave(n_steps + 1)
    jobs_step = torch.arange(n_steps + 1).repeat(n)
    scores = torch.empty(jobs_pair.numel())
    for i in range(0, jobs_pair.numel(), max(1, batch_size)):
        p, k = jobs_pair[i : i + batch_size], jobs_step[i : i + batch_size]
        changed = (rank[p.to(rank.device)] < counts[k].to(rank.device)[:, None]).reshape(-1, 1, h, w)
        step_images = torch.where(changed, end[p.to(end.device)], start[p.to(start.device)])
        scores[i : i + batch_size] = _probs(
            score_fn, step_images, classes[p.to(classes.device)], batch_size
        ).cpu()
    curves = scores.reshape(n, n_steps + 1)
    x = torch.linspace(0, 1, n_steps + 1)
    auc = torch.trapezoid(curves, x, dim=1)
    return {"auc": auc, "curves": curves, "mean": float(auc.mean())}


def average_drop_increase(
    score_fn: ScoreFn, images: torch.Tensor, classes, maps, batch_size: int = 64
) -> dict:
    """Average Drop and Increase in Confidence (Grad-CAM++, Sec. 5.1), per pair and aggregated.

    Returns ``{"drop": (N,), "increase": (N,) bool, "average_drop": float, "increase_in_confidence":
    float, "y": (N,), "o": (N,)}``; drops and the aggregates are fractions in [0, 1].
    """
    classes, maps = _check(images, classes, maps)
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    norm = ((flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).reshape(maps.shape)
    y = _probs(score_fn, images, classes, batch_size)
    o = _probs(score_fn, images * norm[:, None], classes, batch_size)
    if (y <= 0).any():
        raise ValueError("a pair has probability 0 on the full image: Average Drop is undefined")
    drop = torch.clamp(y - o, min=0) / y
    increase = o > y
    return {
        "drop": drop.cpu(),
        "increase": increase.cpu(),
        "average_drop": float(drop.mean()),
        "increase_in_confidence": float(increase.float().mean()),
        "y": y.cpu(),
        "o": o.cpu(),
    }
