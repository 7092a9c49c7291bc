"""Loading weights into a model with messages that say what does not fit."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from wsl.errors import UserError

log = logging.getLogger(__name__)


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


def head_modules(model: nn.Module, num_classes: int) -> list[str]:
    """Names of the modules that produce the ``num_classes`` scores: every ``nn.Linear`` with that many
    outputs and every 1x1 ``nn.Conv2d`` with that many channels (SqueezeNet), e.g. ``fc``, ``head.fc``,
    DeiT's ``head`` and ``head_dist``."""
    return [
        n
        for n, m in model.named_modules()
        if (isinstance(m, nn.Linear) and m.out_features == num_classes)
        or (isinstance(m, nn.Conv2d) and m.out_channels == num_classes and m.kernel_size == (1, 1))
    ]


def load_backbone_weights(model: nn.Module, state: Mapping[str, Any], source: str, num_classes: int) -> None:
    """Pretrained weights into ``model`` whose head was made for ``num_classes``.

    The head's keys (:func:`head_modules`) that are absent from ``state`` or of another shape (a 1000-class
    ImageNet head) are left as initialised, with one log line. Any other key the model has that ``state``
    lacks or holds with another shape is one :class:`UserError` line naming the keys and shapes (another
    architecture, another width); keys of ``state`` the model does not have (an auxiliary head) are
    ignored with a log line, unless no key matches at all.
    """
    own = model.state_dict()
    heads = tuple(f"{h}." for h in head_modules(model, num_classes))
    fits = {
        k: v for k, v in state.items() if k in own and isinstance(v, torch.Tensor) and v.shape == own[k].shape
    }
    misfit = [k for k in own if k not in fits]
    dropped = [k for k in misfit if k.startswith(heads)]
    bad = [k for k in misfit if not k.startswith(heads)]
    if bad or not fits:
        # the message names what is wrong: missing / wrongly shaped backbone keys (and, when nothing
        # matches at all, the file's unexpected keys too, e.g. a "backbone." prefix)
        shown = {k: v for k, v in state.items() if not k.startswith(heads) and (k in own or not fits)}
        fit_state_dict(model, {**shown, **{k: own[k] for k in dropped}}, source, "the model's backbone")
    if dropped:
        shapes = [f"{k} {tuple(state[k].shape)}" if k in state else f"{k} (absent)" for k in dropped]
        log.info("%s: head keys that do not fit %d classes left as initialised: %s",
                 source, num_classes, ", ".join(shapes[:4]))  # fmt: skip
    extra = [k for k in state if k not in own]
    if extra:
        log.info("%s: %d keys the model does not have ignored: %s%s",
                 source, len(extra), ", ".join(extra[:4]), " ..." if len(extra) > 4 else "")  # fmt: skip
    model.load_state_dict({**own, **fits})
