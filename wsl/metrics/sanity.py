"""Model-parameter randomisation sanity check (Adebayo et al., NeurIPS 2018).

The blocks of a copy of the model are re-initialised cascading from the top (logits) down, one
block at a time and cumulatively; after each step the maps are recomputed and compared with the
trained model's maps by the Spearman rank correlation of their absolute values (and by SSIM). A
method whose maps stay highly correlated once the top blocks are random does not depend on what
the model learned (Guided Backprop behaves like an edge detector and fails) and is flagged.

What a step randomises (``mode``):

- ``"layers"`` (the published check, the default): WHOLE layers. :func:`layer_blocks` lists the
  model's layers top first (a residual block, a convolution or linear layer with the normalisation
  right after it, a transformer block, the head), and a step re-initialises everything the layer
  holds: weights, biases, normalisation parameters and running statistics, each as a freshly built
  layer would have them (PyTorch's ``reset_parameters``: Kaiming-uniform weights, BatchNorm's
  gamma 1, beta 0, running mean 0 and variance 1), as Adebayo et al. re-ran every variable's
  initializer of a layer (Sec. 3.1, "cascading randomization ... from the top layer to the bottom").
- ``"conv_linear"``: only the weights and biases of the ``Conv`` / ``Linear`` modules of each block;
  normalisation layers keep their trained values. The benchmark's earlier variant (its default
  blocks are the last convolution / linear layers), kept as an option: with the BatchNorm statistics
  left trained, some maps keep more of their structure, and some methods' verdicts differ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage, stats
from torch import nn

__all__ = [
    "MODES",
    "cascading_randomization",
    "flag",
    "layer_blocks",
    "randomize_block",
    "randomize_module",
    "spearman_rows",
    "ssim_rows",
]

MapFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
MODES: tuple[str, ...] = ("layers", "conv_linear")
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


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


def _holds_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def layer_blocks(model: nn.Module) -> list[str]:
    """The model's whole layers, TOP (logits) FIRST, as block names for :func:`cascading_randomization`.

    Walking the modules in registration order (the order of the forward pass in torchvision and timm
    models), containers (``Sequential``, ``ModuleList``, ``ModuleDict``) and the model itself are opened;
    every other module that holds parameters or buffers is one layer (a ResNet's ``layer4.1``, a ViT's
    ``blocks.11``, a head ``fc``); a normalisation layer right after a convolution or linear layer joins
    it, as ``"conv1+bn1"`` (one layer of the paper's Inception: convolution with its batch norm).
    Parameters held by the model itself (a ViT's class token) belong to no layer.
    """
    found: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, CONTAINERS):
                walk(f"{full}.", child)
            elif _holds_state(child):
                found.append((full, child))

    if isinstance(model, CONTAINERS) or next(model.children(), None) is not None:
        walk("", model)
    blocks: list[list[str]] = []
    previous: nn.Module | None = None
    for name, module in found:
        if isinstance(module, NORMS) and isinstance(previous, WEIGHTED) and blocks:
            blocks[-1].append(name)
        else:
            blocks.append([name])
        previous = module
    return ["+".join(b) for b in blocks][::-1]


def randomize_block(model: nn.Module, block: str, seed: int, mode: str = "layers") -> None:
    """Re-initialise block ``block`` of ``model`` in place (names joined by ``+``), per ``mode``.

    ``"layers"``: every parameter and normalisation buffer of the block (:func:`randomize_module`);
    ``"conv_linear"``: the weights and biases of its ``Conv`` / ``Linear`` modules only."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    modules = [model.get_submodule(name) for name in block.split("+")]
    if mode == "layers":
        for j, module in enumerate(modules):
            randomize_module(module, seed + 7919 * j)  # j = 0: the seed itself
        return
    weighted = [m for module in modules for m in module.modules() if isinstance(m, WEIGHTED)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in weighted:
            m.reset_parameters()


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
    mode: str = "layers",
) -> dict:
    """Cascading randomisation of ``blocks`` (names of sub-modules, top first) on a deep copy.

    Args:
        model: the trained model; never modified (a deep copy is randomised).
        blocks: ``model.get_submodule`` names ordered from the logits down, e.g.
            ``["fc", "layer4.1", "layer4.0"]`` (several modules of one block joined by ``+``, as
            :func:`layer_blocks` gives them); randomisation is cumulative.
        map_fn: ``map_fn(model, images, classes) -> (B, K, h, w)`` maps (tensor or array).
        images: ``(B, C, H, W)``; classes: whatever ``map_fn`` expects, e.g. ``(B, K)`` ints.
        seed: the re-initialisation of block ``i`` uses seed ``seed + i``.
        mode: what a step re-initialises (module docstring): ``"layers"`` or ``"conv_linear"``.

    Returns:
        ``{"blocks": [...], "mode": mode, "spearman": (n_blocks,), "spearman_per_map": (n_blocks, B * K),
        "ssim": (n_blocks,), "ssim_per_map": ...}`` (numpy), ``spearman[i]`` being the mean
        correlation once blocks ``0..i`` are random.
    """
    blocks = list(blocks)
    if not blocks:
        raise ValueError("blocks must name at least one sub-module")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    work = copy.deepcopy(model)
    for block in blocks:  # fail before any work on a wrong name
        for name in block.split("+"):
            work.get_submodule(name)
    trained = np.abs(_as_maps(map_fn(model, images, classes)))
    rho, ssim = [], []
    for i, name in enumerate(blocks):
        randomize_block(work, name, seed + i, mode)
        maps = np.abs(_as_maps(map_fn(work, images, classes)))
        if maps.shape != trained.shape:
            raise ValueError("map_fn returned maps of another shape for the randomised model")
        rho.append(spearman_rows(trained.reshape(len(trained), -1), maps.reshape(len(maps), -1)))
        if with_ssim:
            ssim.append(ssim_rows(trained, maps))
    out = {"blocks": blocks, "mode": mode, "spearman_per_map": np.stack(rho)}
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
