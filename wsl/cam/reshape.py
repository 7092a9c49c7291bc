"""Transformer activations as ``(B, C, h, w)`` maps: reshape helpers, and the parameter-free ``CamLayer``.

CAM methods weigh the channels of a spatial map ``A`` ``(B, C, h, w)``. Transformers do not produce one:

- ViT / DeiT / BEiT / EVA blocks give tokens ``(B, N, D)``: ``p`` prefix tokens (the class token, DeiT's
  distillation token, register tokens) then the ``h * w`` patch tokens in row-major order (the patch
  embedding flattens its ``(B, D, h, w)`` convolution output). :func:`tokens_to_map` drops the prefix and
  folds the patches back, as pytorch-grad-cam's ``reshape_transform`` for ViT does (its tutorial uses the
  last block's ``norm1``: after the last block only the class token reaches a token-pooled head, so the
  patch tokens there carry no gradient).
- Swin (timm >= 0.9, torchvision) stages give channels-last maps ``(B, H, W, C)``: :func:`nhwc_to_nchw`.

Two ways to use them:

1. By hand, with :class:`wsl.cam.CAMExtractor`: ``reshape_transform=vit_reshape(prefix_tokens=1)`` or
   ``reshape_transform=swin_reshape`` (applied to activations and gradients alike).
2. Inside the model: :func:`attach_cam_layer` adds a child module ``cam_layer`` (no parameters, so state
   dicts are unchanged) that receives the source layer's output already reshaped to ``(B, C, h, w)``; the
   network then continues on the (identical) output rebuilt from what ``cam_layer`` returned. Any code that
   hooks a target layer by name (stage=cams, benchmark, visualize, explain, or pytorch-grad-cam itself)
   then works on ``target_layer="cam_layer"`` with no reshape at all, and the gradient it gets is exactly
   dy/dA of the patch tokens (prefix tokens held fixed), i.e. what the reshape transform gives. The relay
   runs only while something hooks ``cam_layer``: training and plain inference pay nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

Layout = Literal["nchw", "nhwc", "tokens"]
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc", "tokens")


def token_grid(n_patches: int, image_size: tuple[int, int] | None, patch_size: tuple[int, int] | None):
    """``(h, w)`` of ``n_patches`` patch tokens: from the input size and the patch size when they agree
    (floor as a strided convolution, or ceil as timm's ``dynamic_img_pad``), else the square root."""
    if image_size is not None and patch_size is not None:
        (hh, ww), (ph, pw) = image_size, patch_size
        for h, w in ((hh // ph, ww // pw), (math.ceil(hh / ph), math.ceil(ww / pw))):
            if h * w == n_patches:
                return h, w
    side = math.isqrt(n_patches)
    if side * side != n_patches:
        raise ValueError(
            f"cannot fold {n_patches} patch tokens into a grid: give size=(h, w) (or input and patch sizes)"
        )
    return side, side


def tokens_to_map(tokens: Tensor, prefix_tokens: int = 1, size: tuple[int, int] | None = None) -> Tensor:
    """ViT tokens ``(B, N, D)`` -> patch map ``(B, D, h, w)``, the first ``prefix_tokens`` dropped.

    ``size``: the patch grid ``(h, w)``; None: square. Raises ValueError on a shape that does not fold.
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (B, N, D), got shape {tuple(tokens.shape)}")
    patches = tokens[:, prefix_tokens:]
    h, w = size if size is not None else token_grid(patches.shape[1], None, None)
    if h * w != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not fill a {h} x {w} grid")
    return patches.transpose(1, 2).unflatten(2, (h, w))


def map_to_tokens(grid: Tensor, prefix: Tensor) -> Tensor:
    """The inverse of :func:`tokens_to_map`: ``(B, D, h, w)`` and the prefix tokens ``(B, p, D)`` ->
    ``(B, p + h*w, D)``."""
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


def nhwc_to_nchw(x: Tensor) -> Tensor:
    """Channels-last ``(B, H, W, C)`` (Swin stages) -> ``(B, C, H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, H, W, C) map, got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2)


def vit_reshape(prefix_tokens: int = 1, size: tuple[int, int] | None = None) -> Callable[[Tensor], Tensor]:
    """A ``reshape_transform`` for :class:`wsl.cam.CAMExtractor` on ViT-like tokens: ``prefix_tokens`` = 1
    for ViT (class token), 2 for distilled DeiT, 1 + registers for register ViTs (timm models say
    ``model.num_prefix_tokens``); ``size`` the patch grid, None for a square one."""
    return partial(tokens_to_map, prefix_tokens=prefix_tokens, size=size)


swin_reshape: Callable[[Tensor], Tensor] = nhwc_to_nchw
"""The ``reshape_transform`` for Swin's channels-last stages (timm >= 0.9 and torchvision)."""


class CamLayer(nn.Module):
    """The source layer's output as ``(B, C, h, w)``; an identity that exists to be hooked.

    Made by :func:`attach_cam_layer`, which relays the source's output through it. ``layout`` says what
    the source returns; ``prefix_tokens`` and ``patch_size`` fold ViT tokens (see :func:`token_grid`).
    """

    def __init__(self, source: str, layout: Layout | None = None, prefix_tokens: int = 0,
                 patch_size: tuple[int, int] | None = None) -> None:  # fmt: skip
        super().__init__()
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.source, self.layout = source, layout
        self.prefix_tokens, self.patch_size = int(prefix_tokens), patch_size
        self._input_size: tuple[int, int] | None = None
        self._handles: list[Any] = []  # the relay and input-size hooks (attach_cam_layer)

    def extra_repr(self) -> str:
        return f"source={self.source!r}, layout={self.layout!r}, prefix_tokens={self.prefix_tokens}"

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> the same tensor."""
        return x

    def _listened(self) -> bool:
        return bool(self._forward_hooks or self._forward_pre_hooks)

    def _record_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], Tensor) and args[0].ndim == 4:
            self._input_size = tuple(args[0].shape[-2:])

    def _layout_of(self, out: Tensor) -> Layout:
        if self.layout is not None:
            return self.layout
        if out.ndim == 3:
            return "tokens"
        if out.ndim == 4:
            return "nchw"
        raise ValueError(
            f"cam_layer: the source layer {self.source!r} returns shape {tuple(out.shape)}, neither a "
            "(B, C, h, w) map nor (B, N, D) tokens; choose another layer"
        )

    def _relay(self, module: nn.Module, inputs: Any, out: Any) -> Tensor | None:
        """Forward hook on the source: out -> map -> ``self`` (hooks see it) -> out rebuilt from that."""
        if not self._listened():
            return None
        if not isinstance(out, Tensor):
            raise TypeError(f"cam_layer: the source layer {self.source!r} returns {type(out).__name__}")
        layout = self._layout_of(out)
        if layout == "nchw":
            return self(out)
        if layout == "nhwc":
            return self(nhwc_to_nchw(out)).permute(0, 2, 3, 1)
        p = self.prefix_tokens
        size = token_grid(out.shape[1] - p, self._input_size, self.patch_size)
        grid = self(tokens_to_map(out, p, size))
        # a hook may return more rows than came in (Ablation-CAM: N ablated copies of one image's map)
        prefix = out[:, :p].expand(grid.shape[0], -1, -1) if out.shape[0] == 1 else out[:, :p]
        return map_to_tokens(grid, prefix)


def attach_cam_layer(model: nn.Module, source: str, layout: Layout | None = None, prefix_tokens: int = 0,
                     patch_size: tuple[int, int] | None = None) -> CamLayer:  # fmt: skip
    """Add ``model.cam_layer``: a :class:`CamLayer` showing module ``source``'s output as ``(B, C, h, w)``.

    ``layout`` None: tokens for a 3-D output, NCHW for a 4-D one (give ``"nhwc"`` for channels-last
    stages). Replaces an earlier ``cam_layer``. Returns it. Raises ValueError for an unknown ``source``.
    """
    modules = dict(model.named_modules())
    if source not in modules or not source:
        close = [n for n in modules if n and (source in n or n in source)][:5]
        raise ValueError(
            f"no module named {source!r} in the model{f'; close names: {close}' if close else ''}"
        )
    old = getattr(model, "cam_layer", None)
    if isinstance(old, CamLayer):
        for handle in old._handles:
            handle.remove()
    layer = CamLayer(source, layout, prefix_tokens, patch_size)
    model.cam_layer = layer
    # bound methods: a deepcopy of the model (the sanity probe's randomised copies) relays to its own copy
    layer._handles = [
        modules[source].register_forward_hook(layer._relay),
        model.register_forward_pre_hook(layer._record_input),
    ]
    return layer
