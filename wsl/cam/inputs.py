"""What the extractor is given: the classes of each image and the pixel masks of segmentation models."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor

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
