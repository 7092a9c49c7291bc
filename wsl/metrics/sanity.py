"""Model-parameter randomisation sanity check (Adebayo et al., NeurIPS 2018).

The blocks of a copy of the model are re-initialised cascading from the top (logits) down, one
block at a time and cumulatively; after each step the maps are recomputed and compared with the
trained model's maps by the Spearman rank correlation of their absolute values (and by SSIM). A
method whose maps stay highly correlated once the top blocks are random does not depend on what
the model learned (Guided Backprop behaves like an edge detector and fails) and is flagged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage, stats

__all__ = ["cascading_randomization", "flag", "randomize_module", "spearman_rows", "ssim_rows"]

MapFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def randomize_module(module: torch.nn.Module, generator_seed: int) -> None:
    """Re-initialise every parameter of ``module`` in place, deterministically.

    Sub-modules with ``reset_parameters`` get PyTorch's default initialisation; any parameter not
    covered is drawn from ``N(0, std)`` with ``std`` that of the trained tensor (0.01 if zero).
    """
    covered: set[int] = set()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(generator_seed)
        for sub in module.modules():
            if callable(getattr(sub, "reset_parameters", None)):
                sub.reset_parameters()
                covered.update(id(p) for p in sub.parameters(recurse=False))
        for p in module.parameters():
            if id(p) not in covered:
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(0.0, std if std > 0 else 0.01)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b``, ``(M,)``.

    Ranks with ties averaged. A row that is constant in both arrays scores 1 (nothing changed);
    constant in exactly one of them scores 0 (no rank information in common).
    """
    ra = stats.rankdata(a, axis=1, method="average")
    rb = stats.rankdata(b, axis=1, method="average")
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    na, nb = np.sqrt((ra**2).sum(1)), np.sqrt((rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(1) / (na * nb)
    rho[(na == 0) != (nb == 0)] = 0.0
    rho[(na == 0) & (nb == 0)] = 1.0
    return rho


def ssim_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM (Wang et al., IEEE TIP 2004) of pairs of maps ``(M, h, w)``, each min-max scaled.

    Uniform 7 x 7 window (smaller for small maps), data range 1, ``K1 = 0.01``, ``K2 = 0.03``.
    """

    def scale(x):
        lo = x.min(axis=(1, 2), keepdims=True)
        span = x.max(axis=(1, 2), keepdims=True) - lo
        return (x - lo) / np.where(span > 0, span, 1.0)

    a, b = scale(a), scale(b)
    win = max(1, min(7, a.shape[1], a.shape[2]) // 2 * 2 + 1)
    if win > min(a.shape[1:]):
        win -= 2
    size = (1, max(win, 1), max(win, 1))
    mu_a, mu_b = ndimage.uniform_filter(a, size), ndimage.uniform_filter(b, size)
    var_a = ndimage.uniform_filter(a * a, size) - mu_a**2
    var_b = ndimage.uniform_filter(b * b, size) - mu_b**2
    cov = ndimage.uniform_filter(a * b, size) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.reshape(s.shape[0], -1).mean(1)


def _as_maps(maps) -> np.ndarray:
    arr = maps.detach().cpu().double().numpy() if torch.is_tensor(maps) else np.asarray(maps, float)
    if arr.ndim != 4:
        raise ValueError(f"map_fn must return (B, K, h, w) maps, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("map_fn returned NaN or inf")
    return arr.reshape(-1, arr.shape[-2], arr.shape[-1])


def cascading_randomization(
    model: torch.nn.Module,
    blocks: Sequence[str],
    map_fn: MapFn,
    images: torch.Tensor,
    classes: torch.Tensor,
    seed: int = 0,
    with_ssim: bool = True,
) -> dict:
    """Cascading randomisation of ``blocks`` (names of sub-modules, top first) on a deep copy.

    Args:
        model: the trained model; never modified (a deep copy is randomised).
        blocks: ``model.get_submodule`` names ordered from the logits down, e.g.
            ``["fc", "layer4", "layer3"]``; randomisation is cumulative.
        map_fn: ``map_fn(model, images, classes) -> (B, K, h, w)`` maps (tensor or array).
        images: ``(B, C, H, W)``; classes: whatever ``map_fn`` expects, e.g. ``(B, K)`` ints.
        seed: the re-initialisation of block ``i`` uses seed ``seed + i``.

    Returns:
        ``{"blocks": [...], "spearman": (n_blocks,), "spearman_per_map": (n_blocks, B * K),
        "ssim": (n_blocks,), "ssim_per_map": ...}`` (numpy), ``spearman[i]`` being the mean
        correlation once blocks ``0..i`` are random.
    """
    blocks = list(blocks)
    if not blocks:
        raise ValueError("blocks must name at least one sub-module")
    work = copy.deepcopy(model)
    for name in blocks:  # fail before any work on a wrong name
        work.get_submodule(name)
    trained = np.abs(_as_maps(map_fn(model, images, classes)))
    rho, ssim = [], []
    for i, name in enumerate(blocks):
        randomize_module(work.get_submodule(name), seed + i)
        maps = np.abs(_as_maps(map_fn(work, images, classes)))
        if maps.shape != trained.shape:
            raise ValueError("map_fn returned maps of another shape for the randomised model")
        rho.append(spearman_rows(trained.reshape(len(trained), -1), maps.reshape(len(maps), -1)))
        if with_ssim:
            ssim.append(ssim_rows(trained, maps))
    out = {"blocks": blocks, "spearman_per_map": np.stack(rho)}
    out["spearman"] = out["spearman_per_map"].mean(1)
    if with_ssim:
        out["ssim_per_map"] = np.stack(ssim)
        out["ssim"] = out["ssim_per_map"].mean(1)
    return out


def flag(result: dict, threshold: float = 0.5, after: int | None = None) -> bool:
    """True when the maps fail the check: mean Spearman still ``> threshold`` after randomising
    the first ``after`` blocks (default: all the blocks of ``result``)."""
    rho = np.asarray(result["spearman"])
    index = len(rho) - 1 if after is None else int(after) - 1
    if not 0 <= index < len(rho):
        raise ValueError(f"after must be in 1..{len(rho)}, got {after}")
    return bool(rho[index] > threshold)
