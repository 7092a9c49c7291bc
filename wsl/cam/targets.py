"""What a CAM explains: the score ``y`` of each requested (image, class) whose gradient the methods use.

A target turns the model's output into scores ``(N, K)`` for class ids ``index`` ``(N, K)``; the
extractor differentiates them (one batched gradient) and the forward-only methods (Score-CAM,
Ablation-CAM) compare them. Built in, by name (``CAMExtractor(..., target=...)``, ``cam.target`` in the
configuration):

- ``logit`` (default): ``y_c``, the raw score (the multi-label logit of the classifiers wsl trains);
  pytorch-grad-cam's ``ClassifierOutputTarget`` (``BinaryClassifierOutputTarget(1)`` on one output);
- ``softmax``: ``softmax(y)_c`` over the classes; ``ClassifierOutputSoftmaxTarget``;
- ``sigmoid``: ``sigmoid(y_c)``, the multi-label probability (pytorch-grad-cam has no such target);

and as objects: :class:`OutputFunction` (any function of the output: a table of scores whose columns
the classes index, e.g. ``lambda out: -out`` or pytorch-grad-cam's ``RawScoresOutputTarget``) and
:class:`CosineSimilarity` (the cosine between an embedding output and reference embeddings, as
pytorch-grad-cam's ``SimilarityToConceptTarget`` tutorial; "class" k is reference k). For segmentation
outputs ``(N, C, H, W)`` the per-pixel score (logit, or softmax/sigmoid over ``C``) is summed over the
class's mask, as ``SemanticSegmentationTarget``.

The default stays the logit: wsl's classifiers are multi-label (one sigmoid per class), and the
sigmoid's derivative only rescales the gradient of each (image, class) by ``s (1 - s) > 0``, so for
Grad-CAM the sigmoid target gives the same map up to that factor, but saturated classes (``s`` near 0
or 1) get vanishing maps. The softmax target couples the classes (its gradient subtracts the other
classes' gradients); it suits single-label models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TARGETS",
    "ClassScore",
    "CosineSimilarity",
    "OutputFunction",
    "SigmoidProbability",
    "SoftmaxProbability",
    "Target",
    "make_target",
]


def gather_scores(table: Tensor, index: Tensor, mask: Tensor | None) -> Tensor:
    """Scores ``(N, K)`` of the columns ``index`` ``(N, K)`` of ``table`` ``(N, C)``; for a dense table
    ``(N, C, H, W)`` the class-c values summed over ``mask`` ``(N, K, H, W)``."""
    if table.ndim == 2:
        return table.gather(1, index)
    if mask is None:
        raise ValueError("a dense (N, C, H, W) output needs a pixel mask per class")
    n, k = index.shape
    picked = table.gather(1, index[:, :, None, None].expand(n, k, *table.shape[2:]))
    return (picked * mask).sum((2, 3))


class Target(ABC):
    """Scores ``(N, K)`` from a model output ``(N, C)`` or ``(N, C, H, W)`` for class ids ``(N, K)``."""

    name: str = "target"

    def num_classes(self, output: Tensor) -> int:
        """How many classes the ids may range over (all classes: ``range(num_classes)``)."""
        return int(output.shape[1])

    def dense(self, output: Tensor) -> bool:
        """True when the output is a segmentation map (a class's score is summed over a mask)."""
        return output.ndim == 4

    @abstractmethod
    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scores ``(N, K)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ClassScore(Target):
    """``y_c``: the raw class score (logit) before any softmax or sigmoid."""

    name = "logit"

    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        return gather_scores(output, index, mask)


class SoftmaxProbability(Target):
    """``softmax(y)_c`` over the classes (dim 1; per pixel for a segmentation output)."""

    name = "softmax"

    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        return gather_scores(output.softmax(1), index, mask)


class SigmoidProbability(Target):
    """``sigmoid(y_c)``: the probability of a multi-label (or binary) head."""

    name = "sigmoid"

    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        return gather_scores(output.sigmoid(), index, mask)


class OutputFunction(Target):
    """``fn(output)`` ``(N, C')`` (or ``(N, C', H, W)``, summed over the mask) indexed by the class ids.

    ``fn`` must be differentiable and treat the images of a batch independently (row i of its result
    depends on row i of the output only), since one backward serves the whole batch.
    """

    name = "function"

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        if not callable(fn):
            raise TypeError("OutputFunction needs a callable: output (N, C) -> scores (N, C')")
        self.fn = fn

    def _table(self, output: Tensor) -> Tensor:
        table = self.fn(output)
        if not isinstance(table, Tensor) or table.ndim not in (2, 4) or table.shape[0] != output.shape[0]:
            got = tuple(table.shape) if isinstance(table, Tensor) else type(table).__name__
            raise ValueError(
                f"the target function must return (N, C') or (N, C', H, W) scores with N = "
                f"{output.shape[0]}, got {got}"
            )
        return table

    def num_classes(self, output: Tensor) -> int:
        with torch.no_grad():
            return int(self._table(output).shape[1])

    def dense(self, output: Tensor) -> bool:
        with torch.no_grad():
            return self._table(output).ndim == 4

    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        return gather_scores(self._table(output), index, mask)

    def __repr__(self) -> str:
        return f"OutputFunction({getattr(self.fn, '__name__', type(self.fn).__name__)})"


class CosineSimilarity(Target):
    """``cos(e, r_k)``: cosine similarity of the embedding output ``e`` ``(N, D)`` with reference k.

    ``reference``: ``(R, D)`` embeddings (or one ``(D,)``); class id k names reference k. With
    ``OutputFunction`` one may first pick the embedding out of a richer output.
    """

    name = "cosine"

    def __init__(self, reference: Tensor, eps: float = 1e-8) -> None:
        reference = torch.as_tensor(reference)
        if reference.ndim == 1:
            reference = reference[None]
        if reference.ndim != 2 or not reference.is_floating_point():
            raise ValueError(
                f"reference must be float embeddings (R, D) or (D,), not {tuple(reference.shape)}"
            )
        self.reference, self.eps = reference.detach(), eps

    def num_classes(self, output: Tensor) -> int:
        return int(self.reference.shape[0])

    def dense(self, output: Tensor) -> bool:
        return False

    def __call__(self, output: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        if output.ndim != 2 or output.shape[1] != self.reference.shape[1]:
            raise ValueError(
                f"cosine target: the output must be embeddings (N, {self.reference.shape[1]}), "
                f"got {tuple(output.shape)}"
            )
        ref = self.reference.to(device=output.device, dtype=output.dtype)
        # cosine_similarity clamps each norm by eps separately (torch >= 1.12), as the tutorial's target
        sims = F.cosine_similarity(output[:, None, :], ref[None], dim=-1, eps=self.eps)  # (N, R)
        return sims.gather(1, index)

    def __repr__(self) -> str:
        return f"CosineSimilarity(reference={tuple(self.reference.shape)})"


_BY_NAME: dict[str, type[Target]] = {t.name: t for t in (ClassScore, SoftmaxProbability, SigmoidProbability)}
TARGETS: tuple[str, ...] = tuple(_BY_NAME)


def make_target(spec: str | Target | Callable[[Tensor], Tensor] | None) -> Target:
    """A :class:`Target` from a name of ``TARGETS``, a target, or a plain function of the output
    (wrapped in :class:`OutputFunction`); None is the logit."""
    if spec is None:
        return ClassScore()
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, str):
        if spec not in _BY_NAME:
            raise ValueError(f"unknown target {spec!r}; choose one of {', '.join(TARGETS)} or pass a Target")
        return _BY_NAME[spec]()
    if callable(spec):
        return OutputFunction(spec)
    raise TypeError(f"target must be a name, a Target or a callable, not {type(spec).__name__}")
