"""CAM (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016).

``M_c = sum_k w_{c,k} A_k`` with ``w`` the weights of the linear classifier that follows global average
pooling (Eq. 2 of the paper; no bias). Only defined for that head: the head is checked on the forward
pass itself (the linear layer's input must be the spatial mean of ``A`` and its output the model's
scores), and any other head is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from wsl.cam.base import CAMMethod, Context, resolve_layer


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool((a - b).abs().max() <= 1e-3 * b.abs().max() + 1e-6)


class CAM(CAMMethod):
    """``fc_layer``: the classifier (name or module); default: the last ``nn.Linear`` run after the target."""

    name = "cam"
    needs = "activations"

    def __init__(self, fc_layer: str | nn.Module | None = None) -> None:
        self.fc_layer = fc_layer
        self._record: tuple[nn.Linear, Tensor, Tensor] | None = None

    @contextmanager
    def observe(self, model: nn.Module, layer: nn.Module | None) -> Iterator[None]:
        if self.fc_layer is not None:
            name, fc = resolve_layer(model, self.fc_layer)
            if not isinstance(fc, nn.Linear):
                raise ValueError(f"fc_layer {name!r} is a {type(fc).__name__}, not an nn.Linear")
            linears = [fc]
        else:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        armed = [False]
        self._record = None

        def arm(*_: Any) -> None:
            armed[0] = True

        def record(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
            if armed[0]:
                self._record = (module, inputs[0].detach(), out.detach())

        assert layer is not None
        handles = [layer.register_forward_hook(arm)] + [m.register_forward_hook(record) for m in linears]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def compute(self, ctx: Context) -> Tensor:
        a = ctx.activations
        assert a is not None
        head_ok = self._record is not None and ctx.logits.ndim == 2
        if head_ok:
            _, fc_in, fc_out = self._record
            head_ok = _close(fc_in.float(), a.mean((2, 3))) and _close(fc_out.float(), ctx.logits.float())
        if not head_ok:
            raise ValueError(
                "method 'cam' needs the target layer to be followed by global average pooling and one "
                "nn.Linear producing the scores (Zhou et al. 2016); this model's head differs. Use 'gradcam' "
                "(equal to CAM up to a positive factor on such heads), or pass fc_layer= or another "
                "target_layer."
            )
        weight = self._record[0].weight.detach().float()
        return torch.einsum("bkc,bchw->bkhw", weight[ctx.index], a)
