"""FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network Visualization",
NeurIPS 2019): a PIXEL map from the input-gradient and the bias-gradients of every layer.

For a network of ReLU-like piecewise-linear layers, ``y_c = <dy_c/dx, x> + sum_b <dy_c/db, b>`` over
every bias b (Eq. 2, completeness). The saliency map (Eq. 4, with psi = |.| then per-map scaling) sums
``|x * dy_c/dx|`` and, for every layer with a spatial bias, ``|b * dy_c/dz|`` (z the layer's output),
each channel scaled to [0, 1] as pytorch-grad-cam does (``(m - min) / (max(m - min) + 1e-7)``), summed
over channels, resized to the input (bilinear) and summed over layers; pytorch-grad-cam's ``FullGrad``
is the reference.

Supported models: CNNs whose spatial biases are in ``nn.Conv2d`` and ``nn.BatchNorm2d`` layers (the
BatchNorm's effective bias ``beta - mu * gamma / sqrt(var + eps)`` of eval mode; ResNet, VGG, the toy
CNN). ``nn.Linear`` biases take part in completeness but have no spatial map. A model with other layers
that hold a bias (LayerNorm, GroupNorm, a BatchNorm subclass with a fused activation, attention, ...) is
refused with the list of those layers: their bias-gradients would be missing from the map. The target
layer is not used (``needs_layer = False``). Cost: a full backward to the input per class, and every
bias layer's gradient is held for one class at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from wsl.cam.base import CAMMethod, Context, model_logits
from wsl.cam.methods._common import minmax
from wsl.cam.postprocess import upsample_maps

BIAS_LAYERS = (nn.Conv2d, nn.BatchNorm2d)
OTHER_OK = (nn.Linear,)


def bias_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose bias FullGrad maps; ValueError naming the layers it cannot account for."""
    found, bad = [], []
    for name, m in model.named_modules():
        has_bias = any(n == "bias" and p is not None for n, p in m.named_parameters(recurse=False))
        if type(m) in BIAS_LAYERS and has_bias:
            if isinstance(m, nn.BatchNorm2d) and not m.track_running_stats:
                bad.append(f"{name} (BatchNorm2d without running statistics)")
            else:
                found.append((name, m))
        elif isinstance(m, nn.modules.batchnorm._NormBase) and type(m) not in BIAS_LAYERS:
            bad.append(f"{name} ({type(m).__name__})")
        elif type(m) is nn.BatchNorm2d and not m.affine:
            bad.append(
                f"{name} (BatchNorm2d without affine parameters: its bias -mu/sigma is not a parameter)"
            )
        elif has_bias and type(m) not in (*BIAS_LAYERS, *OTHER_OK):
            bad.append(f"{name} ({type(m).__name__})")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(
            "method 'fullgrad' supports CNNs whose biases are in nn.Conv2d, nn.BatchNorm2d (eval mode, "
            f"affine) and nn.Linear layers; this model also has biases in {shown}"
        )
    if not found:
        raise ValueError(
            "method 'fullgrad' needs nn.Conv2d or nn.BatchNorm2d layers with a bias; this model has none"
        )
    return found


def effective_bias(layer: nn.Module) -> Tensor:
    """A layer's bias per output channel; for BatchNorm2d in eval mode
    ``beta - mu * gamma / sqrt(var + eps)``."""
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return layer.bias


@contextmanager
def capture_outputs(layers: list[nn.Module], store: list[Tensor | None]) -> Iterator[None]:
    """Keep each layer's output (in the graph) and hand a clone on, so that an in-place op after the layer
    (ResNet's ReLU(inplace=True) after a BatchNorm) cannot change what the gradient is taken of."""

    def hook(i: int):
        def keep(module: nn.Module, inputs: Any, out: Tensor) -> Tensor:
            if store[i] is not None:
                raise ValueError("method 'fullgrad': a bias layer runs more than once per forward pass")
            store[i] = out
            return out.clone()

        return keep

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class FullGrad(CAMMethod):
    name = "fullgrad"
    needs = "activations"
    pixel = True
    needs_layer = False

    def observe(self, model: nn.Module, layer: nn.Module | None):
        bias_layers(model)  # refuse an unsupported model before anything runs
        return super().observe(model, layer)

    def compute(self, ctx: Context) -> Tensor:
        layers = [m for _, m in bias_layers(ctx.model)]
        biases = [effective_bias(m).detach().float() for m in layers]
        size = tuple(ctx.images.shape[-2:])
        x = ctx.images.detach().clone().requires_grad_(True)
        outs: list[Tensor | None] = [None] * len(layers)
        rows = torch.arange(x.shape[0], device=x.device)
        with torch.enable_grad(), capture_outputs(layers, outs):
            logits = model_logits(ctx.model(x))
            scores = ctx.row_scores(logits, rows) * ctx.valid
        used = [i for i, o in enumerate(outs) if o is not None and o.requires_grad]
        inputs = [x, *(outs[i] for i in used)]
        maps = []
        for k in range(scores.shape[1]):  # one class at a time: every layer's gradient is held at once
            with torch.enable_grad():
                grads = torch.autograd.grad(
                    scores[:, k].sum(), inputs, retain_graph=True, allow_unused=True, materialize_grads=True
                )
            total = minmax((grads[0] * x).detach().abs().float()).sum(1)  # (B, H, W)
            for i, g in zip(used, grads[1:]):
                term = (biases[i][None, :, None, None] * g.detach().float()).abs()
                total = total + upsample_maps(minmax(term).sum(1), size)
            maps.append(total)
        if not maps:
            return x.new_zeros((x.shape[0], 0, *size)).float()
        return torch.stack(maps, 1)
