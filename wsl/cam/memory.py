"""How many classes' gradients fit in memory at once: the class chunks of all-class extraction.

The gradients of K classes w.r.t. a target layer ``A`` ``(B, C, h, w)`` are ``K`` times the size of
``A`` (1000 ImageNet classes of a ResNet-50 at 224 px: 1000 x 2048 x 7 x 7 x 4 bytes = 400 MB per image),
and the batched backward through the layers after the target holds about K times their largest
intermediate tensor. :class:`~wsl.cam.extractor.CAMExtractor` therefore runs the classes in chunks whose
estimated cost (:func:`per_class_bytes`) fits a budget: ``max_grad_mb``, or a quarter of the memory free
on the device when that is not given (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable`` of
``/proc/meminfo``). Every chunk differentiates the same graph, so the maps do not depend on the chunking.
:class:`LargestAfter` measures, during the capture pass, the largest tensor the estimate needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wsl.cam.base import TargetHook

AUTO_FRACTION = 0.25  # of the free memory, when no budget is given
FALLBACK_FREE = 2 << 30  # bytes assumed free where the system says nothing (no /proc/meminfo)


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device``: CUDA's ``mem_get_info``, else the system's ``MemAvailable``."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_FREE


def grad_budget(max_grad_mb: float | None, device: torch.device) -> int:
    """The budget in bytes: ``max_grad_mb`` MiB, or :data:`AUTO_FRACTION` of the free memory (None)."""
    if max_grad_mb is None:
        return int(AUTO_FRACTION * free_memory(device))
    if not max_grad_mb > 0:
        raise ValueError(f"max_grad_mb must be > 0 (or None: automatic), got {max_grad_mb}")
    return int(max_grad_mb * (1 << 20))


def per_class_bytes(target_bytes: int, largest_after: int) -> int:
    """Estimated bytes one class adds: its gradient of every target tensor (``target_bytes``, float32)
    kept, about three more of that size in the method's own arithmetic (Grad-CAM++ squares and cubes
    it), and two of the largest tensor the layers after the target produce (a backward step holds the
    gradient of an op's output and of its input)."""
    return 4 * target_bytes + 2 * largest_after


def chunk_size(budget: int, per_class: int, classes: int) -> int:
    """Classes per chunk: as many as fit ``budget`` (at least 1, at most ``classes``)."""
    if classes <= 0:
        return 1
    return max(1, min(classes, budget // max(per_class, 1)))


def chunks(classes: int, size: int) -> list[range]:
    """``range(classes)`` cut into consecutive ranges of ``size`` (the last one shorter)."""
    return [range(s, min(s + size, classes)) for s in range(0, classes, size)] or [range(0)]


class LargestAfter(AbstractContextManager):
    """Forward hooks on every leaf module recording the bytes of the largest tensor produced after the
    first of ``hooks`` has fired (all of them when ``hooks`` is empty): the scale of the per-class
    backward through the layers after the target (:func:`wsl.cam.memory.per_class_bytes`)."""

    def __init__(self, model: nn.Module, hooks: Sequence[TargetHook]) -> None:
        self.model, self.hooks, self.largest = model, hooks, 0
        self._handles: list[Any] = []

    def _record(self, module: nn.Module, inputs: Any, out: Any) -> None:
        if isinstance(out, Tensor) and (not self.hooks or any(h.calls for h in self.hooks)):
            self.largest = max(self.largest, out.numel() * out.element_size())

    def __enter__(self) -> LargestAfter:
        leaves = [m for m in self.model.modules() if next(m.children(), None) is None]
        self._handles = [m.register_forward_hook(self._record) for m in leaves]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
