"""Loading weights into a model with messages that say what does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from wsl.errors import UserError


def fit_state_dict(model: nn.Module, state: Mapping[str, Any], source: str, what: str) -> None:
    """``model.load_state_dict(state)`` (strict); a mismatch is one :class:`UserError` line naming the
    first missing, unexpected and wrongly shaped keys (a ``module.`` prefix, a head of another size...)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatch (file vs model)", shapes),
            )
            if items
        ]
        raise UserError(f"{source} does not fit {what}: {'; '.join(parts)}")
    model.load_state_dict(state)
