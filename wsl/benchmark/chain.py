"""What the benchmark makes for one CAM method before scoring it: maps, boxes, evaluations.

The same files, in the same folders of the run (:class:`wsl.layout.RunLayout`), as stage=cams, boxes and
eval write, reusing what is on disk (make-style, :mod:`wsl.benchmark.steps`): the maps of an image whose
file is complete are kept, boxes and evaluations when their file is newer than their inputs; an evaluation
kept is read back into its typed result. ``overwrite`` makes everything again. Each folder's
``manifest.json`` is written by the caller's ``manifest`` callback (it holds the configuration).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsl import io
from wsl.benchmark.bootstrap import RESAMPLES, SEED
from wsl.benchmark.per_image import quality_intervals
from wsl.benchmark.rows import quality_row
from wsl.benchmark.steps import Step, fresh, run_steps
from wsl.cam import CamSettings, write_dataset_cams
from wsl.errors import UserError
from wsl.evaluation import (
    CamMaskResult,
    LocalizationProtocol,
    LocalizationResult,
    SegmentationResult,
    evaluate_localization,
    evaluate_segmentation,
    save_localization,
    save_segmentation,
)
from wsl.layout import RunLayout
from wsl.localization import dataset_boxes

log = logging.getLogger(__name__)

# manifest(step, folder, started, **counts): write ``folder``'s manifest.json for ``step``.
Manifest = Callable[..., None]


@dataclass(frozen=True)
class ChainSettings:
    """How the maps, boxes and evaluations are made (stage=cams, boxes and eval's options)."""

    cams: CamSettings
    mean: Sequence[float]
    std: Sequence[float]
    limit: int | None = None  # maps of the first N images only; None: all
    overwrite: bool = False
    box_threshold: float | None = 0.15  # None: Otsu
    box_method: str = "relative"
    box_mode: str = "largest"
    protocol: LocalizationProtocol = LocalizationProtocol()
    miou_threshold: float = 0.15
    thresholds: np.ndarray | None = None  # background thresholds swept (None: the evaluator's default)
    num_workers: int = 0
    resamples: int = RESAMPLES  # bootstrap resamples of the intervals (0: no interval)
    seed: int = SEED  # of the resamples


@dataclass(frozen=True)
class ChainResult:
    """``status``: ``{step: "ran" | "reused" | "failed: ..." | "skipped: ..."}`` for ``cams``, ``boxes``,
    ``eval/localization`` and ``eval/segmentation`` (those the dataset has annotations for);
    ``intervals``: the bootstrap intervals of the quality columns (``<key>_low`` / ``<key>_high``, see
    :mod:`wsl.benchmark.per_image`)."""

    status: dict[str, str]
    localization: LocalizationResult | None
    segmentation: CamMaskResult | None
    intervals: dict[str, float] = field(default_factory=dict)


def run_chain(ds, layout: RunLayout, cam: str, split: str, model: torch.nn.Module, device: torch.device,
              s: ChainSettings, manifest: Manifest) -> ChainResult:  # fmt: skip
    """Maps (first ``s.limit`` images), boxes and evaluations of the CAM method ``cam`` on ``ds``."""
    cams, boxes = layout.cams(cam, split), layout.boxes_file(cam, split)
    made = RunLayout.manifest(cams)
    loc, seg = layout.eval(cam, split, "localization"), layout.eval(cam, split, "segmentation")
    first = range(len(ds) if s.limit is None else min(int(s.limit), len(ds)))
    todo = [i for i in first if s.overwrite or not io.is_complete_npz(layout.cam_file(cam, split, ds.ids[i]))]

    def make_cams() -> None:
        started = time.time()
        n = write_dataset_cams(model, ds, todo, cams, s.cams, s.mean, s.std, device, s.num_workers,
                               f"cams {cam} {split}")  # fmt: skip
        kept = len(first) - len(todo)
        if n.done + kept == 0:
            raise UserError(f"no map of split {split!r} could be made")
        manifest("cams", cams, started, done=n.done, skipped=kept, failed=n.failed, maps=n.maps)

    def make_boxes() -> None:
        started = time.time()
        res = dataset_boxes(
            ds, cams, range(len(ds)), s.box_threshold, s.box_method, s.box_mode, f"boxes {cam}"
        )
        io.write_json(boxes, res.sorted_records(), indent=None)
        manifest("boxes", layout.boxes(cam, split), started, done=res.done, skipped=res.missing, failed=0,
                 boxes=len(res.records), maps_without_box=res.empty)  # fmt: skip

    def localize() -> LocalizationResult:
        started = time.time()
        res = evaluate_localization(ds, cams, boxes if boxes.is_file() else None, s.protocol)
        save_localization(loc, res, f"Localization, {cam} on {split}")
        manifest("eval/localization", loc, started, done=res.images)
        return res

    def segment() -> SegmentationResult:
        started = time.time()
        res = evaluate_segmentation(ds, cams, layout.seeds(cam, split), layout.labels(cam, split), cam,
                                    s.miou_threshold, s.thresholds)  # fmt: skip
        save_segmentation(seg, res)
        manifest("eval/segmentation", seg, started, done=res.cams.images)
        return res

    def read(cls: Any, folder: Path) -> Callable[[], Any]:
        return lambda: cls.from_json(io.read_json(RunLayout.metrics(folder)))

    keep = not s.overwrite
    steps = [
        Step("cams", make_cams, keep and made.is_file() and not todo),
        Step("boxes", make_boxes, keep and fresh(boxes, made), needs=("cams",)),
    ]
    if ds.has_boxes:
        reuse = keep and fresh(RunLayout.metrics(loc), made, boxes)
        steps.append(
            Step("eval/localization", localize, reuse, read(LocalizationResult, loc), ("cams", "boxes"))
        )
    if ds.has_masks:
        reuse = keep and fresh(RunLayout.metrics(seg), made)
        steps.append(Step("eval/segmentation", segment, reuse, read(SegmentationResult, seg), ("cams",)))
    status, values = run_steps(steps, cam)
    masks = values.get("eval/segmentation")
    loc_res, mask_res = values.get("eval/localization"), None if masks is None else masks.cams
    intervals: dict[str, float] = {}
    if s.resamples and (loc_res is not None or mask_res is not None):
        args = (s.protocol, s.miou_threshold, s.thresholds, s.resamples, s.seed)
        try:
            intervals = quality_intervals(ds, cams, quality_row(loc_res, mask_res), *args)
        except Exception as e:  # noqa: BLE001 - the intervals are extra: the scores stand without them
            log.warning("benchmark: no interval for %s: %s: %s", cam, type(e).__name__, e)
    return ChainResult(status, loc_res, mask_res, intervals)
