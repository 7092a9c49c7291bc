"""A trained segmentation network scored on a split with masks: the WSSS papers' final "val mIoU".

The network predicts every image with :func:`wsl.segmentation.inference.predict_probs` (multi-scale +
flip, averaged softmax), and the argmax over ALL classes (no image label is used at test time) is scored
with the VOC devkit's mIoU; with ``crf`` the same probabilities also go through the full-resolution dense
CRF (:func:`wsl.segmentation.label_job`, SEC / DeepLab test time, scale s = 1) and are scored a second time,
as the SEC paper reports both (Kolesnikov & Lampert, ECCV 2016). Unreadable images and masks of the wrong
size are counted (``failed``) and logged, never scored.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsl import io
from wsl.evaluation.common import READ_ERRORS, UNITS, clean, log_gaps, reduced, require_masks
from wsl.evaluation.labelmaps import LabelEvaluator
from wsl.evaluation.report import pct
from wsl.evaluation.results import LabelResult
from wsl.progress import track
from wsl.segmentation.crf import CRFPool
from wsl.segmentation.inference import predict_labels, predict_probs
from wsl.segmentation.jobs import label_job

__all__ = ["NetworkResult", "evaluate_network", "save_network"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkResult:
    """Val scores of one network: ``plain`` (argmax of the averaged softmax) and ``crf`` (after the dense
    CRF; None when not asked for), each a :class:`LabelResult`; the inference settings beside them."""

    network: str
    split: str
    plain: LabelResult
    crf: LabelResult | None
    scales: list[float]
    flip: bool
    input_size: int | None  # SEC's square input side (None: scales relative to each image, DeepLab)

    @property
    def miou(self) -> float | None:
        return self.plain.miou

    @property
    def miou_crf(self) -> float | None:
        return None if self.crf is None else self.crf.miou

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics.json`` (fractions)."""
        return clean(
            {
                "units": UNITS,
                "task": "network",
                "network": self.network,
                "split": self.split,
                "miou": self.miou,
                "miou_crf": self.miou_crf,
                "plain": dataclasses.asdict(self.plain),
                "crf": None if self.crf is None else dataclasses.asdict(self.crf),
                "scales": self.scales,
                "flip": self.flip,
                "input_size": self.input_size,
            }
        )

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NetworkResult:
        if d.get("units") != UNITS:
            raise ValueError(f"not a metrics.json in {UNITS!r}: re-run the evaluation")
        return cls(
            d["network"],
            d["split"],
            LabelResult(**d["plain"]),
            None if d.get("crf") is None else LabelResult(**d["crf"]),
            list(d["scales"]),
            bool(d["flip"]),
            d.get("input_size"),
        )


def evaluate_network(
    ds,
    model: torch.nn.Module,
    network: str,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    input_size: int | None = None,
    crf: bool = True,
    pool: CRFPool | None = None,
    batch_size: int = 8,
    indices: Iterable[int] | None = None,
    reduce: Callable | None = None,
    crf_iterations: int = 10,
) -> NetworkResult:
    """Score ``model`` (eval mode) on the images ``indices`` (default all) of ``ds`` (with masks).

    Args:
        network: a name for the reports (``sec``, ``segtrain-randomwalk``...).
        scales, flip, input_size: :func:`~wsl.segmentation.inference.predict_probs`'s (``input_size``
            is its ``size``: SEC's square input; None for DeepLab's scales of the image itself).
        crf: also score the predictions refined by the dense CRF (``pool``'s processes, or inline).
        reduce: ``wsl.dist.merge_all`` when each process scored a shard.
    """
    require_masks(ds)
    plain, refined = LabelEvaluator(ds), LabelEvaluator(ds) if crf else None
    todo = list(range(len(ds))) if indices is None else list(indices)
    keys = np.arange(ds.num_classes + 1)
    pool = pool or CRFPool(0)
    for start in track(range(0, len(todo), batch_size), f"eval {network} {ds.split}", unit="batch"):
        chunk, images, masks = [], [], []
        for i in todo[start : start + batch_size]:
            try:
                image, mask = ds.load_image(i), ds.load_mask(i)
                if mask.shape != image.shape[:2]:
                    raise ValueError(f"mask {mask.shape}, image {image.shape[:2]}")
            except READ_ERRORS as e:
                for acc in (plain, refined):
                    if acc is not None:
                        acc.add_failed(ds.ids[i], e)
                continue
            chunk.append(i)
            images.append(image)
            masks.append(mask)
        probs = predict_probs(model, images, scales, flip, mean, std, device, input_size) if images else []
        for i, p in zip(chunk, probs):
            plain.update(i, predict_labels(p))
        if refined is not None:
            jobs = ((im, p, keys, True, 1e-5, crf_iterations) for im, p in zip(images, probs))
            for i, pred in zip(chunk, pool.imap(label_job, jobs)):
                refined.update(i, pred)
    plain = reduced(plain, reduce, ds)
    log_gaps(f"network {network}", ds.split, plain.images, plain.missing, plain.failed)
    res_crf = None if refined is None else reduced(refined, reduce, ds).compute()
    return NetworkResult(
        network,
        ds.split,
        plain.compute(),
        res_crf,
        [float(s) for s in scales],
        bool(flip),
        None if input_size is None else int(input_size),
    )


def network_markdown(r: NetworkResult) -> str:
    """A summary and a per-class table (percent)."""
    how = f"scales {r.scales}{' + flip' if r.flip else ''}, " + (
        f"square {r.input_size} px input (SEC)" if r.input_size else "relative to the image (DeepLab)"
    )
    rows = ["| what | mIoU (%) |", "|---|---:|", f"| {r.network} | {pct(r.miou)} |"]
    if r.crf is not None:
        rows.append(f"| {r.network} + dense CRF | {pct(r.miou_crf)} |")
    cols = [("network", r.plain.per_class_iou)] + ([("+ CRF", r.crf.per_class_iou)] if r.crf else [])
    table = ["| class | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    table += [f"| {n} | " + " | ".join(pct(v.get(n)) for _, v in cols) + " |" for n in r.plain.per_class_iou]
    return (
        f"# Network {r.network} on {r.split}\n\n{how}; {r.plain.images} images, {r.plain.failed} "
        "failed\n\n" + "\n".join(rows) + "\n\n## Per class (IoU), percent\n\n" + "\n".join(table) + "\n"
    )


def save_network(folder: str | os.PathLike, result: NetworkResult) -> None:
    """Write ``metrics.json`` and ``metrics.md``."""
    folder = Path(folder)
    io.write_json(folder / "metrics.json", result.to_json())
    io.write_text(folder / "metrics.md", network_markdown(result))
