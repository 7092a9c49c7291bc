"""Localization scores of stored maps: every labelled class's map against the GT boxes of that class.

Per (image, labelled class) as ``shared/reference/evaluation.md`` defines for multi-label images: the
Grad-CAM protocol (15 % of the max, largest segment) top-1 / top-5 / GT-known localization and CorLoc, the
pointing game, wsolevaluation's MaxBoxAcc (V1) and MaxBoxAccV2 and, where masks exist, PxAP
(:mod:`wsl.metrics`); and COCO box AP of a results file (``[{image_id, category_id, bbox, score}]``)
through ``pycocotools.cocoeval.COCOeval``. Every value is a fraction in ``[0, 1]``.

    result = evaluate_localization(ds, "outputs/run/cams/gradcam/val")
    save_localization("outputs/run/eval/gradcam/val/localization", result, "Grad-CAM on val")
"""

from __future__ import annotations

import contextlib
import functools
import io as _io
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from wsl import io
from wsl.cam.stored import load_full
from wsl.evaluation.common import (
    DatasetEvaluator,
    MissingMapError,
    cams_of_labelled,
    log_gaps,
    reduced,
    score_files,
)
from wsl.evaluation.results import DEFAULT_PROTOCOL, LocalizationProtocol, LocalizationResult
from wsl.localization.boxes import check_map
from wsl.metrics.localization import LocalizationAccumulator
from wsl.metrics.merging import check_mergeable
from wsl.metrics.wsol import MaxBoxAccumulator, PxAPAccumulator, default_thresholds

__all__ = ["LocalizationEvaluator", "coco_box_ap", "evaluate_localization"]

log = logging.getLogger(__name__)


def coco_box_ap(ds, results_path: str | os.PathLike, image_ids: Iterable[int]) -> tuple[float, float]:
    """COCO box AP and AP50 (fractions) of a results file over ``image_ids`` (``ds.coco_image_id``).

    Empty results score 0; NaN when no GT box of ``image_ids`` exists (COCOeval's -1).
    """
    from pycocotools.cocoeval import COCOeval

    results = io.read_json(results_path)
    if not results:
        return 0.0, 0.0
    gt = ds.coco_gt()
    with contextlib.redirect_stdout(_io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50 = (float(v) for v in ev.stats[:2])
    return (ap if ap >= 0 else math.nan), (ap50 if ap50 >= 0 else math.nan)


class LocalizationEvaluator(DatasetEvaluator):
    """Accumulates every localization metric over images of ``ds`` (``update`` / ``merge`` / ``compute``).

    Args:
        ds: a dataset with boxes (``load_boxes``, ``labels``, ``image_size``, ``coco_image_id``); with
            ``has_masks`` PxAP is scored too. Not pickled (see :mod:`wsl.evaluation.common`).
        protocol: the fixed settings.
    """

    def __init__(self, ds, protocol: LocalizationProtocol = DEFAULT_PROTOCOL) -> None:
        self.ds, self.protocol = ds, protocol
        self.class_names = list(ds.class_names)
        self.has_masks = bool(getattr(ds, "has_masks", False))
        p = protocol
        taus = default_thresholds(p.box_acc_step)
        self.loc = LocalizationAccumulator(p.loc_threshold, p.iou_threshold, 5, p.pointing_tolerance)
        self.v1 = MaxBoxAccumulator(taus, (p.iou_threshold,), multi_contour=False)
        self.v2 = MaxBoxAccumulator(taus, p.v2_ious, multi_contour=True)
        self.px = PxAPAccumulator(taus) if self.has_masks else None
        self.image_ids: list[int] = []  # scored images, for COCO AP
        self.missing = self.failed = 0

    def update(self, i: int, rec: dict[str, np.ndarray]) -> None:
        """Score image ``i`` of the dataset with its CAM record ``rec`` (:func:`wsl.cam.stored.load_full`).

        Raises:
            MissingMapError: a labelled class has no map (a ValueError: re-make the maps).
            ValueError / OSError: the maps or logits are inconsistent with the image or its ground truth
                (size, NaN, class count) or the ground truth is unreadable; nothing is counted then.
        """
        ds = self.ds
        classes, full, absent = cams_of_labelled(rec, ds.labels()[i])
        if absent:
            raise MissingMapError(f"{ds.ids[i]}: no map for labelled classes {absent}: re-run stage=cams")
        size = tuple(int(v) for v in ds.image_size(i))
        if full.shape[1:] != size:
            raise ValueError(f"{ds.ids[i]}: maps are {full.shape[1:]}, the image is {size}")
        maps = {int(c): check_map(m, f"map of class {c}") for c, m in zip(classes, full)}
        gt = ds.load_boxes(i)
        mask = ds.load_mask(i) if self.px is not None else None
        if mask is not None and mask.shape != size:
            raise ValueError(f"{ds.ids[i]}: mask is {mask.shape}, the image is {size}")
        self.loc.update(maps, rec["logits"], gt["boxes"], gt["labels"], gt["difficult"])  # checks first
        for c, cmap in maps.items():
            of_c = gt["labels"] == c
            if of_c.any() and not gt["difficult"][of_c].all():
                self.v1.update(cmap, gt["boxes"][of_c])
                self.v2.update(cmap, gt["boxes"][of_c])
            if mask is not None:  # other classes' pixels are negatives, void stays ignored
                self.px.update(cmap, np.where(mask == 255, 255, (mask == c + 1).astype(np.uint8)))
        self.image_ids.append(int(ds.coco_image_id(i)))

    def merge(self, other: LocalizationEvaluator) -> LocalizationEvaluator:
        """Add another evaluator's counts (same protocol and classes); returns self."""
        check_mergeable(self, other, "protocol", "class_names", "has_masks")
        self.loc.merge(other.loc)
        self.v1.merge(other.v1)
        self.v2.merge(other.v2)
        if self.px is not None:
            self.px.merge(other.px)
        self.image_ids.extend(other.image_ids)
        self._merge_counts(other)
        return self

    def compute(self, boxes_file: str | os.PathLike | None = None) -> LocalizationResult:
        """Every metric as fractions; COCO AP of ``boxes_file`` over the scored images when it exists.

        Raises ``ValueError`` when no image with an evaluable class was scored.
        """
        p, names = self.protocol, self.class_names
        r_loc, r_v1, r_v2 = self.loc.compute(), self.v1.compute(), self.v2.compute()
        pxap = precision = recall = None
        if self.px is not None and self.px.pos.sum() > 0:
            r_px = self.px.compute()
            pxap, precision, recall = r_px.pxap, r_px.precision, r_px.recall
        elif self.px is not None:
            log.warning("no ground-truth foreground pixel of a labelled class: PxAP left out")
        coco_ap = coco_ap50 = None
        if boxes_file is not None and Path(boxes_file).is_file():
            coco_ap, coco_ap50 = coco_box_ap(self.ds, boxes_file, self.image_ids)
        elif boxes_file is not None:
            log.info("no %s: COCO box AP left out (run stage=boxes to get it)", boxes_file)
        d1 = float(p.iou_threshold)
        return LocalizationResult(
            top1_loc_err=r_loc.top1_loc_err,
            top5_loc_err=r_loc.topk_loc_err,
            gt_known_loc=r_loc.gt_known_loc,
            corloc=r_loc.corloc,
            pointing_game=r_loc.pointing_game,
            corloc_per_class={names[c]: v for c, v in r_loc.corloc_per_class.items()},
            max_box_acc=r_v1.best_acc[d1],
            max_box_acc_threshold=r_v1.best_threshold[d1],
            max_box_acc_v2=r_v2.max_box_acc,
            max_box_acc_v2_per_iou={str(d): v for d, v in r_v2.best_acc.items()},
            max_box_acc_v2_thresholds={str(d): t for d, t in r_v2.best_threshold.items()},
            pxap=pxap,
            coco_ap=coco_ap,
            coco_ap50=coco_ap50,
            images=r_loc.images,
            pairs=r_loc.pairs,
            skipped_images=r_loc.skipped_images,
            missing=self.missing,
            failed=self.failed,
            failed_items=self.failures.as_dict(),
            thresholds=r_v1.thresholds,
            box_acc_v1=r_v1.box_acc[d1],
            box_acc_v2={str(d): curve for d, curve in r_v2.box_acc.items()},
            pr_precision=precision,
            pr_recall=recall,
            protocol=p,
        )


def evaluate_localization(
    ds,
    cams_dir: str | os.PathLike,
    boxes_file: str | os.PathLike | None = None,
    protocol: LocalizationProtocol = DEFAULT_PROTOCOL,
    indices: Iterable[int] | None = None,
    reduce: Callable[[LocalizationEvaluator], LocalizationEvaluator] | None = None,
) -> LocalizationResult:
    """Score the CAM files ``cams_dir/<id>.npz`` of ``ds`` (see :class:`LocalizationEvaluator`).

    Args:
        ds: the split's dataset, with boxes.
        cams_dir: folder of :func:`wsl.io.save_cams` files.
        boxes_file: COCO-format box results (stage=boxes) scored with COCOeval when the file exists.
        indices: the images this process scores (default: all of ``ds``).
        reduce: applied to the evaluator before ``compute`` (``wsl.dist.merge_all`` when sharded).

    Missing files are counted (``missing``), unreadable or inconsistent ones counted (``failed``) and
    logged; a file without the map of a labelled class raises :class:`MissingMapError`.
    """
    acc = LocalizationEvaluator(ds, protocol)
    read = functools.partial(load_full, num_classes=ds.num_classes)
    score_files(acc, ds, cams_dir, ".npz", read, indices, f"eval localization {ds.split}")
    acc = reduced(acc, reduce, ds)
    log_gaps("CAM files", cams_dir, len(acc.image_ids), acc.missing, acc.failed)
    return acc.compute(boxes_file)
