"""``CAMExtractor``: maps for every requested class of every image from one forward pass.

    with CAMExtractor(model, method="gradcam", target_layer="layer4") as ext:
        maps = ext(images, classes)        # (B, K, h, w), or a list of (K_i, h, w) for ragged classes

The model's own ``forward`` runs once with hooks (no model surgery); gradient methods then get the
gradients of all requested classes through one batched backward that stops at the target layer
(``wsl.cam.base``). Hooks are registered for the duration of a call and removed even on error, and the
model's eval/train modes and ``requires_grad`` flags are restored after each call, so the extractor may
be used with or without ``with``.

Several target layers (``target_layer=["layer3", "layer4"]``) share that one forward and one batched
gradient (w.r.t. every layer at once); their maps are combined as pytorch-grad-cam combines a list of
layers (:mod:`wsl.cam.layers`). Many classes are processed in chunks whose gradients fit a memory budget
(:mod:`wsl.cam.memory`); the maps do not depend on the chunking. What a class's score is (logit,
probability, a function of the output, similarity to an embedding) is the ``target``
(:mod:`wsl.cam.targets`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from numbers import Integral
from typing import Any, Literal

import torch
from torch import Tensor, nn

from wsl.cam import memory
from wsl.cam.base import (
    CAMMethod,
    Context,
    ReshapeTransform,
    TargetHook,
    apply_reshape,
    batched_grads,
    frozen_model,
    guided_relus,
    model_device,
    model_logits,
    resolve_layer,
)
from wsl.cam.inputs import Classes, parse_classes, resolve_mask
from wsl.cam.layers import combine_layer_maps, largest_size
from wsl.cam.memory import LargestAfter
from wsl.cam.methods import build_method
from wsl.cam.methods._common import aug_smooth
from wsl.cam.targets import Target, make_target

log = logging.getLogger(__name__)

Layer = str | nn.Module
CombineSize = Literal["largest", "input"] | tuple[int, int]


class CAMExtractor:
    """Class activation maps of ``model`` at ``target_layer`` with one of ``METHODS``.

    Args:
        model: returns class scores ``(B, C)``, or segmentation logits ``(B, C, H, W)`` / a dict with
            ``"out"`` (a class's score is then the sum of its logits over a mask).
        method: one of ``METHODS``.
        target_layer: a name from ``model.named_modules()`` or the module; not needed for guided_backprop.
            A list of several layers gives their combined map (pytorch-grad-cam's aggregation: each
            layer's map ReLU'd, min-max scaled, resized to ``combine_size``, then averaged); a list of
            one layer is that layer alone.
        relu: apply the final ReLU (off: signed maps, e.g. for HiResCAM's sum property); with several
            layers, the ReLU of each layer's map before the scaling.
        reshape_transform: turns the target layer's output into ``(B, C, h, w)``, e.g. ViT tokens
            ``(B, N, D)`` -> ``(B, D, h, w)``; applied to activations and to gradients, as pytorch-grad-cam.
        batch_size: inputs per forward pass inside scorecam and ablationcam.
        fc_layer: the classifier of ``cam`` (default: the last ``nn.Linear`` run after the target layer).
        options: method options (``wsl.cam.methods.METHOD_OPTIONS``: ``eigen_smooth``, ``score``, ...),
            given to :func:`~wsl.cam.methods.build_method`; ``method`` may also be a built method.
        aug_smooth: pytorch-grad-cam's test-time augmentation: the mean of the maps of 6 augmented
            inputs (flip x pixel factors 0.9, 1, 1.1), each scaled to [0, 1] (``methods._common``).
        target: what a class's score is: ``"logit"`` (default), ``"softmax"``, ``"sigmoid"``, a
            :class:`~wsl.cam.targets.Target` (e.g. ``CosineSimilarity``) or a function of the output
            returning ``(B, C')`` scores (:mod:`wsl.cam.targets`).
        max_grad_mb: memory budget (MiB) of the class gradients held at once: classes run in chunks
            that fit it; None: a quarter of the free memory (:mod:`wsl.cam.memory`).
        combine_size: with several layers, the size the layers' maps are resized to before averaging:
            ``"largest"`` (the largest layer map), ``"input"`` (the image, as pytorch-grad-cam) or (h, w).
    """

    def __init__(
        self,
        model: nn.Module,
        method: str | CAMMethod = "gradcam",
        target_layer: Layer | Sequence[Layer] | None = None,
        *,
        relu: bool = True,
        reshape_transform: ReshapeTransform | None = None,
        batch_size: int = 64,
        fc_layer: str | nn.Module | None = None,
        options: Mapping[str, Any] | None = None,
        aug_smooth: bool = False,
        target: str | Target | Callable[[Tensor], Tensor] | None = "logit",
        max_grad_mb: float | None = None,
        combine_size: CombineSize = "largest",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_grad_mb is not None and not max_grad_mb > 0:
            raise ValueError(f"max_grad_mb must be > 0 (or None: automatic), got {max_grad_mb}")
        if not (combine_size in ("largest", "input") or _is_size(combine_size)):
            raise ValueError(f"combine_size must be 'largest', 'input' or (h, w), got {combine_size!r}")
        if isinstance(method, CAMMethod):
            if fc_layer is not None or options:
                raise ValueError("fc_layer and options apply to a method name; this method is built already")
            self.method = method
        else:
            self.method = build_method(method, fc_layer=fc_layer, **dict(options or {}))
        method = self.method.name
        layers = list(target_layer) if isinstance(target_layer, list | tuple) else [target_layer]
        layers = [layer for layer in layers if layer is not None]
        needs_layer = self.method.needs != "input" and getattr(self.method, "needs_layer", True)
        if not layers and needs_layer:
            raise ValueError(f"method {method!r} needs a target_layer (a name from model.named_modules())")
        self.model = model
        self.layers = [resolve_layer(model, layer) for layer in layers]
        if len({name for name, _ in self.layers}) < len(self.layers):
            raise ValueError(f"target layers named twice: {[name for name, _ in self.layers]}")
        self.multi = len(self.layers) > 1
        if self.multi and (self.method.pixel or self.method.needs == "input"):
            raise ValueError(f"method {method!r} makes pixel maps and takes one target layer, not a list")
        if self.multi:
            self.layer_name, self.layer = [name for name, _ in self.layers], None
        else:
            self.layer_name, self.layer = self.layers[0] if self.layers else (None, None)
        self.relu = relu
        self.reshape_transform = reshape_transform
        self.batch_size = batch_size
        self.target = make_target(target)
        self.max_grad_mb = max_grad_mb
        self.combine_size = combine_size
        self.aug_smooth = bool(aug_smooth)
        self.last_chunk: int | None = None  # classes per chunk in the last call (gradient methods)

    def __enter__(self) -> CAMExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: hooks and model state never outlive a call."""

    def __repr__(self) -> str:
        return (
            f"CAMExtractor(method={self.method.name!r}, target_layer={self.layer_name!r}, relu={self.relu}, "
            f"target={self.target!r})"
        )

    def __call__(
        self, images: Tensor, classes: Classes = None, mask: Tensor | None = None
    ) -> Tensor | list[Tensor]:
        """Maps of ``images`` ``(B, 3, H, W)`` (normalised) for ``classes``.

        ``classes``: None (all C), a long tensor ``(B, K)``, or B lists of class ids of any lengths.
        ``mask`` (segmentation models): ``(B, H', W')`` or ``(B, K, H', W')`` at the output's size.
        Returns detached float32 maps on the model's device: ``(B, K, h, w)`` at the target layer's
        resolution (``(B, K, H, W)`` for the guided methods), or a list of ``(K_i, h, w)`` when
        ``classes`` is a list. Not normalised, not resized (one layer); several layers give their
        combined map in [0, 1] at ``combine_size``.
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
            valid = None

            def run(x: Tensor, m: Tensor | None) -> Tensor:
                nonlocal valid
                maps, valid = self._extract(x, parsed, m)
                return maps

            maps = aug_smooth(run, images, mask) if self.aug_smooth else run(images, mask)
        assert valid is not None
        if classes is not None and not isinstance(classes, Tensor):  # lists in, lists out
            return [maps[i, : int(n)] for i, n in enumerate(valid.sum(1).tolist())]
        return maps

    def _extract(
        self, images: Tensor, parsed: tuple[Tensor, Tensor] | None, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The maps ``(B, K, ...)`` of one capture (one layer: after the ReLU; several: combined) and
        ``valid``."""
        if self.multi and type(self.method).observe is not CAMMethod.observe:
            # a method with its own hooks on the target layer (CAM's head check) runs layer by layer
            runs = [self._maps(images, parsed, mask, [layer]) for layer in self.layers]
            per_layer, valid = [r[0][0] for r in runs], runs[0][1]
        else:
            per_layer, valid = self._maps(images, parsed, mask, self.layers)
        if self.multi:
            size = self._combine_size(per_layer, tuple(images.shape[-2:]))
            return combine_layer_maps(per_layer, size, relu=self.relu), valid
        maps = per_layer[0]
        return (maps.clamp(min=0) if self.relu else maps), valid

    def _combine_size(self, maps: list[Tensor], image_size: tuple[int, int]) -> tuple[int, int]:
        if self.combine_size == "largest":
            return largest_size(maps)
        if self.combine_size == "input":
            return image_size
        return (int(self.combine_size[0]), int(self.combine_size[1]))

    def _maps(
        self,
        images: Tensor,
        parsed: tuple[Tensor, Tensor] | None,
        mask: Tensor | None,
        layers: list[tuple[str, nn.Module]],
    ) -> tuple[list[Tensor], Tensor]:
        """One forward pass with hooks on ``layers``, the scores, the gradients the method needs (in
        class chunks) and the method's signed float32 maps: one ``(B, K, h, w)`` per layer, and ``valid``."""
        needs = self.method.needs
        chain = len(layers) > 1
        hooks = [] if needs == "input" else [
            TargetHook(module, "leaf" if needs == "gradients" else "observe", chain=chain)
            for _, module in layers
        ]  # fmt: skip
        probe = LargestAfter(self.model, hooks) if needs != "activations" else nullcontext()
        x = images.detach().clone().requires_grad_(True) if needs == "input" else images
        single = layers[0][1] if len(layers) == 1 else None
        with torch.set_grad_enabled(needs != "activations"):
            with ExitStack() as stack:
                for hook in hooks:
                    stack.enter_context(hook)
                stack.enter_context(self.method.observe(self.model, single))
                if needs == "input":
                    stack.enter_context(guided_relus(self.model))
                stack.enter_context(probe)
                logits = model_logits(self.model(x))
            for (name, _), hook in zip(layers, hooks):
                if hook.calls == 0:
                    raise ValueError(f"the target layer {name!r} did not run in the forward pass")
            index, valid = self._classes(parsed, logits)
            seg_mask = resolve_mask(mask, logits, index)
            scores = self.target(logits, index, seg_mask) * valid
        if scores.ndim != 2 or scores.shape != index.shape:
            raise ValueError(f"the target gave scores {tuple(scores.shape)}, not {tuple(index.shape)}")
        activations = []
        for hook in hooks:
            assert hook.captured is not None
            raw = hook.captured.detach()
            activations.append((raw, apply_reshape(self.reshape_transform, raw).float()))
        plain = [(layers[i][1], *activations[i]) for i in range(len(hooks))] or [(None, None, None)]

        def context(cols: range, layer: nn.Module | None, raw: Tensor | None, act: Tensor | None) -> Context:
            sel = slice(cols.start, cols.stop)
            return Context(
                model=self.model,
                layer=layer,
                images=images,
                index=index[:, sel],
                valid=valid[:, sel],
                logits=logits.detach(),
                scores=scores[:, sel].detach(),
                mask=None if seg_mask is None else seg_mask[:, sel],
                reshape_transform=self.reshape_transform,
                batch_size=self.batch_size,
                raw_activations=raw,
                activations=act,
                target=self.target,
            )

        k = index.shape[1]
        if needs == "activations":  # forward-only methods hold no class gradients: no chunks
            maps = [self.method.compute(context(range(k), *p)).detach().float() for p in plain]
            return maps, valid
        sources = [x] if needs == "input" else [h.captured for h in hooks]
        if not scores.requires_grad:
            where = "the input" if needs == "input" else f"the target layer {self.layer_name!r}"
            raise ValueError(f"the class scores do not depend on {where}")
        size = self._chunk(sources, probe.largest, logits, k)
        out: list[list[Tensor]] = [[] for _ in plain]
        for cols in memory.chunks(k, size):
            if len(cols):
                grads = batched_grads(scores, sources, cols)
            else:
                grads = [s.new_zeros((0, *s.shape)) for s in sources]
            for i, p in enumerate(plain):
                ctx = context(cols, *p)
                if needs == "input":
                    ctx.input_gradients = grads[0].transpose(0, 1).float()
                else:
                    g = apply_reshape(self.reshape_transform, grads[i], lead=2)
                    ctx.gradients = g.transpose(0, 1).float()
                out[i].append(self.method.compute(ctx).detach().float())
            del grads
        return [torch.cat(chunks, 1) if len(chunks) > 1 else chunks[0] for chunks in out], valid

    def _chunk(self, sources: list[Tensor], largest_after: int, logits: Tensor, k: int) -> int:
        """Classes per chunk under the memory budget (:mod:`wsl.cam.memory`)."""
        target_bytes = sum(s.numel() * 4 for s in sources)
        largest = max(largest_after, logits.numel() * logits.element_size())
        if self.method.pixel:  # Guided Grad-CAM: a full guided backward to the pixels per class
            target_bytes += sum(s.numel() * 4 for s in sources[:1])
        per_class = memory.per_class_bytes(target_bytes, largest)
        budget = memory.grad_budget(self.max_grad_mb, sources[0].device)
        size = memory.chunk_size(budget, per_class, k)
        if per_class > budget:
            warnings.warn(
                f"one class needs about {per_class / 2**20:.0f} MiB of gradients, over the budget of "
                f"{budget / 2**20:.0f} MiB: running one class at a time",
                stacklevel=3,
            )
        self.last_chunk = size
        return size

    def _classes(self, parsed: tuple[Tensor, Tensor] | None, logits: Tensor) -> tuple[Tensor, Tensor]:
        b, c = logits.shape[0], self.target.num_classes(logits)
        if parsed is None:
            index = torch.arange(c, device=logits.device).expand(b, c)
            return index, torch.ones_like(index, dtype=torch.bool)
        index, valid = parsed
        bad = valid & ((index < 0) | (index >= c))
        if bool(bad.any()):
            raise ValueError(f"class ids must be in [0, {c}); got {index[bad].unique().tolist()}")
        return index, valid


def _is_size(value: object) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, Integral) and int(v) > 0 for v in value)
    )
