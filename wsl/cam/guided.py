"""The guided backward rule (Springenberg et al., "Striving for Simplicity", ICLR Workshop 2015) for every
ReLU-like activation, as modules and as ``torch.nn.functional`` calls.

Guided Backprop changes one thing in the backward pass: at each ReLU, the gradient ``g`` arriving from
above is passed down only where it is positive AND where the ReLU's forward input was positive (Eq. in
Sec. 3.4 of the paper: ``R_l = (f_l > 0) * (R_{l+1} > 0) * R_{l+1}``). For an activation ``f`` other than
ReLU the rule keeps ``f``'s own derivative and adds the two masks, which is what pytorch-grad-cam's
``GuidedBackpropSwish`` does for SiLU (``rule="springenberg"``, the default); ``rule="positive_grad"``
keeps only the mask on the gradient:

| activation | f'(x) | springenberg (default) | positive_grad |
| --- | --- | --- | --- |
| ReLU, ``F.relu``, ``torch.relu`` | ``1[x > 0]`` | ``g+ 1[x > 0]`` | the same |
| ReLU6, ``F.relu6`` | ``1[0 < x < 6]`` | ``g+ 1[0 < x < 6]`` | the same |
| LeakyReLU(a), ``F.leaky_relu`` | ``1`` (x > 0), ``a`` (x < 0) | ``g+ 1[x > 0]`` | ``g+ f'(x)`` |
| SiLU / Swish, ``F.silu`` | ``s(x) (1 + x (1 - s(x)))`` | ``g+ f'(x) 1[x > 0]`` | ``g+ f'(x)`` |
| GELU, ``F.gelu`` (exact or tanh) | ``Phi(x) + x phi(x)`` | ``g+ f'(x) 1[x > 0]`` | ``g+ f'(x)`` |
| Hardswish, ``F.hardswish`` | 0 (x < -3), ``(2x+3)/6``, 1 (x > 3) | ``g+ f'(x) 1[x > 0]`` | ``g+ f'(x)`` |

with ``g+ = max(g, 0)``. Mechanism: while :func:`guided_activations` is active, a forward pre-hook on each
activation module (and a wrapper around each listed function, patched into ``torch.nn.functional``,
``torch`` and ``torch.Tensor`` for the duration) records the input mask (before an in-place op overwrites
the input) and registers a hook on the output's gradient that applies the masks; the activation's own
backward then multiplies by ``f'(x)``. Nothing else in the model changes, so in-place activations work.

Activations the rule cannot reach: names imported before the patch (``from torch.nn.functional import
relu``), hand-written ones (``x * x.sigmoid()``), other nonlinearities (Tanh, Sigmoid, ELU, Mish). When no
reachable activation runs in the forward pass, :func:`guided_activations` raises ``ValueError`` rather
than let the caller take the plain input gradient for Guided Backprop.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Rule = Literal["springenberg", "positive_grad"]
RULES: tuple[str, ...] = ("springenberg", "positive_grad")
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
)
# (owner, attribute): the functional forms patched while the rule is active
FUNCTIONS: tuple[tuple[Any, str], ...] = (
    (F, "relu"),
    (F, "relu_"),
    (F, "relu6"),
    (F, "leaky_relu"),
    (F, "silu"),
    (F, "gelu"),
    (F, "hardswish"),
    (torch, "relu"),
    (torch, "relu_"),
    (torch.Tensor, "relu"),
    (torch.Tensor, "relu_"),
)


@dataclass
class GuidedState:
    """What one :func:`guided_activations` block saw: activation calls, by kind (module class or function)."""

    rule: Rule
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1


def guided_grad(g: Tensor, positive_input: Tensor | None) -> Tensor:
    """The guided gradient handed to an activation's own backward: ``g`` where ``g > 0`` (and, with a
    mask, where the forward input was positive), else 0."""
    keep = g > 0
    if positive_input is not None:
        keep = keep & positive_input
    return torch.where(keep, g, torch.zeros((), dtype=g.dtype, device=g.device))


def _input_mask(state: GuidedState, x: Any) -> Tensor | None:
    if state.rule == "springenberg" and isinstance(x, Tensor) and x.requires_grad:
        return x.detach() > 0  # taken before the op: an in-place activation overwrites x
    return None


def _guide(out: Any, mask: Tensor | None) -> None:
    if isinstance(out, Tensor) and out.requires_grad:
        out.register_hook(lambda g: guided_grad(g, mask))


def _wrap(state: GuidedState, fn: Any, kind: str) -> Any:
    @functools.wraps(fn)
    def guided(input: Any, *args: Any, **kwargs: Any) -> Any:
        state._count(kind)
        mask = _input_mask(state, input) if torch.is_grad_enabled() else None
        out = fn(input, *args, **kwargs)
        if torch.is_grad_enabled():
            _guide(out, mask)
        return out

    return guided


@contextmanager
def guided_activations(model: nn.Module, rule: Rule = "springenberg") -> Iterator[GuidedState]:
    """Guided Backpropagation for every forward pass of ``model`` run inside the block (the gradients
    taken afterwards from those passes follow the rule: hooks stay on their graph).

    Raises ValueError on leaving the block when no activation the rule can reach ran (see the module
    docstring), so that Guided Backprop is never silently the plain gradient. Modules, patched functions
    and hooks are restored even on error.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    state = GuidedState(rule)
    masks: dict[int, Tensor | None] = {}

    def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
        state._count(type(module).__name__)
        if torch.is_grad_enabled() and args:
            masks[id(module)] = _input_mask(state, args[0])

    def post(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if torch.is_grad_enabled():
            _guide(out, masks.pop(id(module), None))

    handles = []
    patched: list[tuple[Any, str, Any]] = []
    try:
        for m in model.modules():
            if isinstance(m, ACTIVATION_MODULES):
                handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        for owner, name in FUNCTIONS:
            original = getattr(owner, name)
            patched.append((owner, name, original))
            setattr(owner, name, _wrap(state, original, f"{getattr(owner, '__name__', 'Tensor')}.{name}"))
        yield state
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
        for h in handles:
            h.remove()
    if state.total == 0:
        raise ValueError(
            "Guided Backprop: no activation the guided rule reaches ran in the forward pass (nn.ReLU, ReLU6, "
            "LeakyReLU, SiLU, GELU, Hardswish modules or F.relu/relu6/leaky_relu/silu/gelu/hardswish, "
            "torch.relu calls); its result would be the plain input gradient. Use another method"
        )
