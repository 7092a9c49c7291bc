"""The shared template of every CAM method: model state, hooks, class scores and batched gradients.

A method (one small file in ``wsl.cam.methods``) subclasses :class:`CAMMethod`, declares what it needs
(``activations``, ``gradients`` of the target layer, or guided ``input`` gradients) and turns a
:class:`Context` into signed maps ``(B, K, h, w)``. Everything else lives here:

- :func:`frozen_model` switches the model to eval mode and every parameter's ``requires_grad`` off for
  the duration of one call and restores both exactly, even on error;
- :class:`TargetHook` captures the target layer's output. For gradient methods it keeps a detached leaf
  ``A`` that requires grad and hands ``A.clone()`` to the rest of the network: nothing below the target
  layer records a graph, and an in-place op right after the target (VGG's ``ReLU(inplace=True)``) edits
  the clone, not ``A``;
- :func:`batched_grad` gets the gradients of all requested classes together.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from wsl.cam.targets import ClassScore, Target, gather_scores

log = logging.getLogger(__name__)

Needs = Literal["activations", "gradients", "input"]
ReshapeTransform = Callable[[Tensor], Tensor]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(name, module)`` for a name from ``model.named_modules()`` or a submodule of ``model``."""
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer not in modules:
            close = [n for n in modules if n and (layer in n or n in layer)][:5]
            hint = f"; close names: {close}" if close else ""
            raise ValueError(f"no module named {layer!r} in the model (see model.named_modules()){hint}")
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError("the given layer module is not a submodule of the model")
    raise TypeError(f"a layer is a module name or an nn.Module, not {type(layer).__name__}")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def frozen_model(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside; every module's mode and flag restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


class TargetHook(AbstractContextManager):
    """A forward hook on the target layer, registered on ``__enter__`` and always removed on ``__exit__``.

    ``mode="leaf"``: keep ``captured = out.detach().requires_grad_()`` and return its clone (gradient
    methods). ``mode="observe"``: keep ``out.detach()`` and return a clone (so that an in-place op after
    the layer cannot change what was kept). ``mode="replace"``: return ``replacement`` instead of the
    layer's output (Ablation-CAM). A layer called more than once per forward is refused.

    ``chain=True`` (several target layers): in leaf mode, an output that already depends on an earlier
    target's leaf is kept as it is (a node of the graph, not detached) so that the gradient w.r.t. the
    earlier target still flows through this layer; its clone goes on.
    """

    def __init__(
        self,
        layer: nn.Module,
        mode: Literal["leaf", "observe", "replace"],
        replacement: Tensor | None = None,
        chain: bool = False,
    ) -> None:
        self.layer, self.mode, self.replacement, self.chain = layer, mode, replacement, chain
        self.captured: Tensor | None = None
        self.calls = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> TargetHook:
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, inputs: Any, out: Any) -> Tensor:
        if not isinstance(out, Tensor):
            raise TypeError(
                f"the target layer must return a tensor, got {type(out).__name__}; pick another layer"
            )
        self.calls += 1
        if self.calls > 1:
            raise ValueError("the target layer runs more than once per forward pass; pick a module used once")
        if self.mode == "replace":
            assert self.replacement is not None
            return self.replacement.clone()  # layers after the target may edit it in place
        if self.chain and self.mode == "leaf" and out.requires_grad:
            self.captured = out
            return out.clone()
        self.captured = out.detach()
        if self.mode == "leaf":
            self.captured.requires_grad_(True)
        return self.captured.clone()


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[None]:
    """Guided Backpropagation (Springenberg et al. 2015) through hooks, without replacing modules, for every
    ReLU-like activation (ReLU, ReLU6, LeakyReLU, SiLU, GELU, Hardswish; modules and functional calls).

    The rule per activation and its mechanism: :mod:`wsl.cam.guided`. A model where no activation the
    rule reaches runs raises ``ValueError`` instead of silently giving the plain input gradient.
    """
    from wsl.cam.guided import guided_activations

    with guided_activations(model):
        yield


def model_logits(raw: Any) -> Tensor:
    """The score tensor of a model output: ``(B, C)`` or ``(B, C, H, W)``; a dict gives its ``"out"``."""
    if isinstance(raw, dict) and "out" in raw:
        raw = raw["out"]
    if not isinstance(raw, Tensor) or raw.ndim not in (2, 4):
        raise TypeError(
            "the model must return class scores (B, C), segmentation logits (B, C, H, W) or a dict with "
            f"'out'; got {type(raw).__name__}"
            + (f" of shape {tuple(raw.shape)}" if isinstance(raw, Tensor) else "")
        )
    return raw


def class_scores(logits: Tensor, index: Tensor, mask: Tensor | None) -> Tensor:
    """Scores ``(N, K)`` of classes ``index`` ``(N, K)`` (the ``logit`` target, :mod:`wsl.cam.targets`).

    Classifier logits ``(N, C)``: ``y_c``. Segmentation logits ``(N, C, H, W)``: the sum of the class-c
    logits over ``mask`` ``(N, K, H, W)``, as pytorch-grad-cam's ``SemanticSegmentationTarget``.
    """
    return gather_scores(logits, index, mask)


def batched_grad(scores: Tensor, inputs: Tensor) -> Tensor:
    """Gradients ``(K, *inputs.shape)`` of ``scores[:, k].sum()`` for every k, in one backward.

    Images of a batch are independent in eval mode, so column k of ``scores`` ``(B, K)`` gives every
    image's k-th class at once. One ``autograd.grad(..., is_grads_batched=True)`` call (vmap over the K
    one-hot ``grad_outputs``) replaces K backward passes. On 2 CPU threads (ResNet-50, batch 8, K = 20,
    gradient stopped at layer4) it measured 0.02-0.07 s against 0.09-0.20 s for K ``retain_graph``
    backwards, so it is the default. On a GPU (not measured here: no GPU in that session) the batched call
    launches each backward kernel once on K times the data instead of K times, which favours it further.
    Where an op after the target has no batching rule that works (``RuntimeError``), it falls back to one
    backward per class, with a warning.
    """
    return batched_grads(scores, [inputs], range(scores.shape[1]), retain_graph=True)[0]


def batched_grads(
    scores: Tensor, inputs: Sequence[Tensor], columns: range, retain_graph: bool = True
) -> list[Tensor]:
    """Gradients ``(len(columns), *inputs[i].shape)`` of ``scores[:, k].sum()`` for the classes ``k`` of
    ``columns`` w.r.t. EVERY tensor of ``inputs`` (several target layers), from one batched backward.

    The class chunks of :class:`~wsl.cam.extractor.CAMExtractor` call it once per chunk on the same graph
    (``retain_graph``); each class's gradient is computed exactly as in a call with all the classes.
    """
    n, k = scores.shape
    cols = torch.arange(columns.start, columns.stop, columns.step, device=scores.device)
    eye = torch.zeros(len(cols), n, k, dtype=scores.dtype, device=scores.device)
    eye[torch.arange(len(cols), device=scores.device), :, cols] = 1
    try:
        grads = torch.autograd.grad(
            scores, list(inputs), grad_outputs=eye, retain_graph=retain_graph, is_grads_batched=True
        )
        return list(grads)
    except (RuntimeError, NotImplementedError) as err:
        # warnings (not logging): shown once per process by the default filter, not once per batch
        warnings.warn(f"batched gradient failed, one backward per class instead: {err}", stacklevel=2)
    ids = cols.tolist()
    per_class = [
        torch.autograd.grad(scores[:, j].sum(), list(inputs), retain_graph=retain_graph or j != ids[-1])
        for j in ids
    ]
    return [torch.stack([g[i] for g in per_class]) for i in range(len(inputs))]


def apply_reshape(transform: ReshapeTransform | None, tensor: Tensor, lead: int = 1) -> Tensor:
    """``transform`` applied over the first ``lead`` dims flattened into one batch dim (identity if None)."""
    if transform is None:
        return tensor
    shape = tensor.shape[:lead]
    out = transform(tensor.flatten(0, lead - 1) if lead > 1 else tensor)
    return out.unflatten(0, shape) if lead > 1 else out


@dataclass
class Context:
    """Everything a method may use for one batch; tensors are detached and on the model's device.

    ``index``/``valid`` are ``(B, K)`` (ragged class lists padded, padding marked invalid); ``mask``
    ``(B, K, H', W')`` exists for segmentation models only; ``raw_activations`` is the target layer's own
    output, ``activations`` ``(B, C, h, w)`` the same after ``reshape_transform``; ``gradients``
    ``(B, K, C, h, w)`` = dy_c/dA; ``input_gradients`` ``(B, K, 3, H, W)`` = guided dy_c/dx.
    """

    model: nn.Module
    layer: nn.Module | None
    images: Tensor
    index: Tensor
    valid: Tensor
    logits: Tensor
    scores: Tensor
    mask: Tensor | None
    reshape_transform: ReshapeTransform | None
    batch_size: int
    raw_activations: Tensor | None = None
    activations: Tensor | None = None
    gradients: Tensor | None = None
    input_gradients: Tensor | None = None
    target: Target | None = None  # what a class's score is (None: the logit, wsl.cam.targets)

    def score(self, output: Tensor, index: Tensor, mask: Tensor | None) -> Tensor:
        """Scores ``(N, K)`` of the classes ``index`` in a model output under this context's target."""
        return (self.target or ClassScore())(output, index, mask)

    def row_scores(self, logits: Tensor, rows: Tensor) -> Tensor:
        """Scores ``(N, K)`` in ``logits`` (one row per forwarded input) of the classes of images ``rows``."""
        mask = None if self.mask is None else self.mask[rows]
        return self.score(logits, self.index[rows], mask)

    @torch.no_grad()
    def forward_scores(self, x: Tensor, rows: Tensor) -> Tensor:
        """Forward ``x`` ``(N, 3, H, W)`` (row i derived from image ``rows[i]``); class scores ``(N, K)``."""
        return self.row_scores(model_logits(self.model(x)), rows)

    @torch.no_grad()
    def forward_replaced(self, b: int, replacement: Tensor) -> Tensor:
        """Scores ``(N, K)`` of image b's classes when the target layer outputs ``replacement`` ``(N, ...)``.

        Only the layers after the target see N rows: the layers below run on image b alone (batch 1), and
        a skip connection from below broadcasts over the rows, which is exact since every row is image b.
        Cost per call: one single-image pass up to the target plus N passes of the layers after it. A model
        that cannot broadcast that way (a batch-dim concatenation, say) is rerun on image b repeated N times.
        """
        assert self.layer is not None
        n = replacement.shape[0]
        rows = torch.full((n,), b, dtype=torch.long, device=replacement.device)
        for x in (self.images[b : b + 1], self.images[b : b + 1].expand(n, -1, -1, -1)):
            try:
                with TargetHook(self.layer, "replace", replacement):
                    logits = model_logits(self.model(x))
            except RuntimeError as err:
                log.debug("single-image pass below the target failed (%s); repeating the image", err)
                continue
            if logits.shape[0] == n:
                return self.row_scores(logits, rows)
        raise RuntimeError("could not run the layers after the target layer on the ablated activations")

    def guided_gradients(self) -> Tensor:
        """Guided-backprop gradients ``(B, K, 3, H, W)`` of each class score w.r.t. the input pixels."""
        x = self.images.detach().clone().requires_grad_(True)
        with torch.enable_grad(), guided_relus(self.model):
            logits = model_logits(self.model(x))
            scores = self.score(logits, self.index, self.mask) * self.valid
            if scores.shape[1] == 0:
                return x.new_zeros((x.shape[0], 0, *x.shape[1:]))
            return batched_grad(scores, x).transpose(0, 1).detach()


class CAMMethod(ABC):
    """A CAM method: ``needs`` what the capture pass must provide, ``compute`` makes the maps.

    ``compute`` returns SIGNED maps ``(B, K, h, w)`` (``(B, K, H, W)`` when ``pixel``); the extractor
    applies the final ReLU when asked to.
    """

    name: ClassVar[str]
    needs: ClassVar[Needs] = "gradients"
    pixel: ClassVar[bool] = False

    def observe(self, model: nn.Module, layer: nn.Module | None) -> AbstractContextManager:
        """Extra hooks to hold during the capture forward pass (none by default)."""
        return nullcontext()

    @abstractmethod
    def compute(self, ctx: Context) -> Tensor:
        """Signed maps ``(B, K, h, w)`` from the context."""


class WeightedSum(CAMMethod):
    """Methods whose map is ``sum_k w_k A_k`` with per-(image, class) channel weights ``w`` ``(B, K, C)``."""

    @abstractmethod
    def weights(self, ctx: Context) -> Tensor:
        """Channel weights ``(B, K, C)``."""

    def compute(self, ctx: Context) -> Tensor:
        assert ctx.activations is not None
        return torch.einsum("bkc,bchw->bkhw", self.weights(ctx), ctx.activations)
