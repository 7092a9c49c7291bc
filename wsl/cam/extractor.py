"""``CAMExtractor``: maps for every requested class of every image from one forward pass.

    with CAMExtractor(model, method="gradcam", target_layer="layer4") as ext:
        maps = ext(images, classes)        # (B, K, h, w), or a list of (K_i, h, w) for ragged classes

The model's own ``forward`` runs once with hooks (no model surgery); gradient methods then get the
gradients of all requested classes through one batched backward that stops at the target layer
(``wsl.cam.base``). Hooks are registered for the duration of a call and removed even on error, and the
model's eval/train modes and ``requires_grad`` flags are restored after each call, so the extractor may
be used with or without ``with``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from numbers import Integral

import torch
from torch import Tensor, nn

from wsl.cam.base import (
    Context,
    ReshapeTransform,
    TargetHook,
    apply_reshape,
    batched_grad,
    class_scores,
    frozen_model,
    guided_relus,
    model_device,
    model_logits,
    resolve_layer,
)
from wsl.cam.methods import METHODS, REGISTRY
from wsl.cam.methods.cam import CAM

log = logging.getLogger(__name__)

Classes = Tensor | Sequence[Sequence[int]] | None


def parse_classes(classes: Classes, batch: int, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """``(index, valid)``, both ``(B, K)``, from a long tensor ``(B, K)`` or ``B`` lists of class ids
    (ragged lists padded with class 0 marked invalid); ``None`` for all classes. Raises ValueError."""
    if classes is None:
        return None
    if isinstance(classes, Tensor):
        if classes.dtype.is_floating_point or classes.dtype == torch.bool or classes.is_complex():
            raise ValueError(f"classes must be an integer tensor, got {classes.dtype}")
        if classes.ndim != 2 or classes.shape[0] != batch:
            raise ValueError(
                f"classes must have shape (B, K) = ({batch}, K), got {tuple(classes.shape)}; "
                "use classes[:, None] for one class per image"
            )
        index = classes.to(device=device, dtype=torch.long)
        return index, torch.ones_like(index, dtype=torch.bool)
    if hasattr(classes, "tolist"):  # a NumPy array: B lists
        classes = classes.tolist()
    if not isinstance(classes, Sequence) or isinstance(classes, str):
        raise ValueError(
            f"classes must be None, a (B, K) tensor or B lists of ints, not {type(classes).__name__}"
        )
    if len(classes) != batch:
        raise ValueError(f"classes has {len(classes)} entries for a batch of {batch} images")
    lists = []
    for i, item in enumerate(classes):
        values = item.tolist() if hasattr(item, "tolist") else item
        if not isinstance(values, Sequence) or not all(isinstance(v, Integral) for v in values):
            raise ValueError(f"classes[{i}] must be a list of ints, got {item!r}")
        lists.append(list(values))
    width = max((len(v) for v in lists), default=0)
    index = torch.zeros(batch, width, dtype=torch.long)
    valid = torch.zeros(batch, width, dtype=torch.bool)
    for i, values in enumerate(lists):
        index[i, : len(values)] = torch.tensor([int(v) for v in values], dtype=torch.long)
        valid[i, : len(values)] = True
    return index.to(device), valid.to(device)


def resolve_mask(mask: Tensor | None, logits: Tensor, index: Tensor) -> Tensor | None:
    """The pixel mask ``(B, K, H, W)`` of each requested class of a segmentation model.

    Given ``(B, H, W)`` (one mask for all classes) or ``(B, K, H, W)``; by default the pixels where the
    class wins the argmax (pytorch-grad-cam's ``SemanticSegmentationTarget`` with that mask).
    """
    if logits.ndim == 2:
        if mask is not None:
            raise ValueError("mask applies to segmentation models only; this model returns (B, C) scores")
        return None
    b, k = index.shape
    size = tuple(logits.shape[2:])
    if mask is None:
        return (logits.argmax(1, keepdim=True) == index[:, :, None, None]).to(logits.dtype)
    mask = mask.to(device=logits.device, dtype=logits.dtype)
    if mask.ndim == 3 and mask.shape == (b, *size):
        return mask[:, None].expand(b, k, *size)
    if mask.ndim == 4 and mask.shape == (b, k, *size):
        return mask
    raise ValueError(
        f"mask must be (B, H, W) = {(b, *size)} or (B, K, H, W) = {(b, k, *size)}, got {tuple(mask.shape)}"
    )


class CAMExtractor:
    """Class activation maps of ``model`` at ``target_layer`` with one of ``METHODS``.

    Args:
        model: returns class scores ``(B, C)``, or segmentation logits ``(B, C, H, W)`` / a dict with
            ``"out"`` (a class's score is then the sum of its logits over a mask).
        method: one of ``METHODS``.
        target_layer: a name from ``model.named_modules()`` or the module; not needed for guided_backprop.
        relu: apply the final ReLU (off: signed maps, e.g. for HiResCAM's sum property).
        reshape_transform: turns the target layer's output into ``(B, C, h, w)``, e.g. ViT tokens
            ``(B, N, D)`` -> ``(B, D, h, w)``; applied to activations and to gradients, as pytorch-grad-cam.
        batch_size: inputs per forward pass inside scorecam and ablationcam.
        fc_layer: the classifier of ``cam`` (default: the last ``nn.Linear`` run after the target layer).
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "gradcam",
        target_layer: str | nn.Module | None = None,
        *,
        relu: bool = True,
        reshape_transform: ReshapeTransform | None = None,
        batch_size: int = 64,
        fc_layer: str | nn.Module | None = None,
    ) -> None:
        if method not in REGISTRY:
            raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")
        if fc_layer is not None and method != "cam":
            raise ValueError("fc_layer applies to method='cam' only")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.method = CAM(fc_layer) if method == "cam" else REGISTRY[method]()
        if target_layer is None and self.method.needs != "input":
            raise ValueError(f"method {method!r} needs a target_layer (a name from model.named_modules())")
        self.model = model
        self.layer_name, self.layer = (
            (None, None) if target_layer is None else resolve_layer(model, target_layer)
        )
        self.relu = relu
        self.reshape_transform = reshape_transform
        self.batch_size = batch_size

    def __enter__(self) -> CAMExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: hooks and model state never outlive a call."""

    def __repr__(self) -> str:
        return (
            f"CAMExtractor(method={self.method.name!r}, target_layer={self.layer_name!r}, relu={self.relu})"
        )

    def __call__(
        self, images: Tensor, classes: Classes = None, mask: Tensor | None = None
    ) -> Tensor | list[Tensor]:
        """Maps of ``images`` ``(B, 3, H, W)`` (normalised) for ``classes``.

        ``classes``: None (all C), a long tensor ``(B, K)``, or B lists of class ids of any lengths.
        ``mask`` (segmentation models): ``(B, H', W')`` or ``(B, K, H', W')`` at the output's size.
        Returns detached float32 maps on the model's device: ``(B, K, h, w)`` at the target layer's
        resolution (``(B, K, H, W)`` for the guided methods), or a list of ``(K_i, h, w)`` when
        ``classes`` is a list. Not normalised, not resized.
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError("images must be a float tensor (B, 3, H, W)")
        device = model_device(self.model)
        # the gradient methods need autograd even when called under torch.inference_mode()
        with torch.inference_mode(False), frozen_model(self.model):
            parsed = parse_classes(classes, images.shape[0], device)
            images = images.detach().to(device)  # nothing below the target layer records a graph
            if images.is_inference():
                images = images.clone()
            if mask is not None and mask.is_inference():
                mask = mask.clone()
            ctx = self._capture(images, parsed, mask)
            maps = self.method.compute(ctx).detach().float()
        if self.relu:
            maps = maps.clamp(min=0)
        if classes is not None and not isinstance(classes, Tensor):  # lists in, lists out
            return [maps[i, : int(n)] for i, n in enumerate(ctx.valid.sum(1).tolist())]
        return maps

    def _capture(self, images: Tensor, parsed: tuple[Tensor, Tensor] | None, mask: Tensor | None) -> Context:
        """The forward pass with hooks, the class scores and the gradients the method needs."""
        needs = self.method.needs
        hook = None
        if self.layer is not None and needs != "input":
            hook = TargetHook(self.layer, "leaf" if needs == "gradients" else "observe")
        x = images.detach().clone().requires_grad_(True) if needs == "input" else images
        with torch.set_grad_enabled(needs != "activations"):
            with ExitStack() as stack:
                if hook is not None:
                    stack.enter_context(hook)
                stack.enter_context(self.method.observe(self.model, self.layer))
                if needs == "input":
                    stack.enter_context(guided_relus(self.model))
                logits = model_logits(self.model(x))
            if hook is not None and hook.calls == 0:
                raise ValueError(f"the target layer {self.layer_name!r} did not run in the forward pass")
            index, valid = self._classes(parsed, logits)
            seg_mask = resolve_mask(mask, logits, index)
            scores = class_scores(logits, index, seg_mask) * valid
        ctx = Context(
            model=self.model,
            layer=self.layer,
            images=images,
            index=index,
            valid=valid,
            logits=logits.detach(),
            scores=scores.detach(),
            mask=seg_mask,
            reshape_transform=self.reshape_transform,
            batch_size=self.batch_size,
        )
        if hook is not None:
            assert hook.captured is not None
            ctx.raw_activations = hook.captured.detach()
            ctx.activations = apply_reshape(self.reshape_transform, ctx.raw_activations).float()
        if needs == "activations":
            return ctx
        source = x if needs == "input" else hook.captured
        if not scores.requires_grad:
            raise ValueError(f"the class scores do not depend on the target layer {self.layer_name!r}")
        if index.shape[1] == 0:
            grads = source.new_zeros((0, *source.shape))
        else:
            grads = batched_grad(scores, source)
        if needs == "input":
            ctx.input_gradients = grads.transpose(0, 1).float()
        else:
            ctx.gradients = apply_reshape(self.reshape_transform, grads, lead=2).transpose(0, 1).float()
        return ctx

    @staticmethod
    def _classes(parsed: tuple[Tensor, Tensor] | None, logits: Tensor) -> tuple[Tensor, Tensor]:
        b, c = logits.shape[:2]
        if parsed is None:
            index = torch.arange(c, device=logits.device).expand(b, c)
            return index, torch.ones_like(index, dtype=torch.bool)
        index, valid = parsed
        bad = valid & ((index < 0) | (index >= c))
        if bool(bad.any()):
            raise ValueError(f"class ids must be in [0, {c}); got {index[bad].unique().tolist()}")
        return index, valid
