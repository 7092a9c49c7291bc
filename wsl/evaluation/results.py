"""Typed results of the evaluation and their ``metrics.json`` form.

Every metric is a fraction in ``[0, 1]`` (percent only on display: ``metrics.md`` and the plots). The
JSON keeps the key names the stages have always written, adds ``"units"``, turns NaN into null and arrays
into lists; ``from_json`` rebuilds the typed result from it (and refuses a file without ``"units"``: the
metrics.json of older versions held percentages).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from wsl.evaluation.common import UNITS, clean, or_nan


def _check_units(d: dict[str, Any]) -> None:
    if d.get("units") != UNITS:
        raise ValueError(
            f"not a metrics.json in {UNITS!r} (units: {d.get('units')!r}): re-run the evaluation"
        )


def _floats(values) -> np.ndarray:
    return np.array([or_nan(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class LocalizationProtocol:
    """The fixed settings of the localization evaluation; the defaults are the published protocols.

    loc_threshold: the Grad-CAM box threshold, a fraction of the map maximum (Selvaraju et al.: 0.15).
    iou_threshold: IoU of a correct box (0.5), also MaxBoxAcc (V1)'s delta.
    box_acc_step: step of the CAM thresholds of MaxBoxAcc / PxAP (wsolevaluation: 0.01 or 0.001).
    pointing_tolerance: pointing game tolerance in pixels (Zhang et al.: 15).
    v2_ious: the deltas of MaxBoxAccV2 (Choe et al.: 0.3, 0.5, 0.7).
    """

    loc_threshold: float = 0.15
    iou_threshold: float = 0.5
    box_acc_step: float = 0.01
    pointing_tolerance: float = 15.0
    v2_ious: tuple[float, ...] = (0.3, 0.5, 0.7)


DEFAULT_PROTOCOL = LocalizationProtocol()  # frozen: safe as a default argument


@dataclass(frozen=True)
class LocalizationResult:
    """Localization scores of one set of stored maps; every metric a fraction in ``[0, 1]``.

    top1_loc_err, top5_loc_err, gt_known_loc, corloc (mean of ``corloc_per_class``, by class name) and
    pointing_game follow the Grad-CAM protocol per (image, labelled class). max_box_acc: MaxBoxAcc (V1) at
    ``iou_threshold``, its CAM threshold (``max_box_acc_threshold``) tuned on GT; max_box_acc_v2: the mean
    of ``max_box_acc_v2_per_iou`` (keys ``str(delta)``), thresholds tuned on GT per delta. pxap: None when
    the dataset has no masks; coco_ap / coco_ap50: None when no boxes file was scored. images: images
    scored; pairs: (image, evaluable class) pairs; skipped_images: images with no evaluable class;
    missing / failed: images whose CAM file is absent / unreadable or inconsistent. thresholds ``(T,)``,
    box_acc_v1 ``(T,)``, box_acc_v2 ``{str(delta): (T,)}``: the BoxAcc curves; pr_precision,
    pr_recall ``(P,)``: the pixel PR curve (None without masks).
    """

    top1_loc_err: float
    top5_loc_err: float
    gt_known_loc: float
    corloc: float
    pointing_game: float
    corloc_per_class: dict[str, float]
    max_box_acc: float
    max_box_acc_threshold: float
    max_box_acc_v2: float
    max_box_acc_v2_per_iou: dict[str, float]
    max_box_acc_v2_thresholds: dict[str, float]
    pxap: float | None
    coco_ap: float | None
    coco_ap50: float | None
    images: int
    pairs: int
    skipped_images: int
    missing: int
    failed: int
    thresholds: np.ndarray
    box_acc_v1: np.ndarray
    box_acc_v2: dict[str, np.ndarray]
    pr_precision: np.ndarray | None
    pr_recall: np.ndarray | None
    protocol: LocalizationProtocol
    failed_items: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> why it failed

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics.json`` (strict JSON: NaN -> null, arrays -> lists)."""
        p = self.protocol
        tuned = {
            "max_box_acc": f"CAM threshold chosen on GT: {self.max_box_acc_threshold:.3f}",
            "max_box_acc_v2": "CAM threshold chosen on GT per IoU threshold: "
            + ", ".join(f"{d}: {t:.3f}" for d, t in self.max_box_acc_v2_thresholds.items()),
        }
        if self.pxap is not None:
            tuned["pxap"] = "threshold-free (area under the pixel PR curve)"
        out = {
            "units": UNITS,
            "top1_loc_err": self.top1_loc_err,
            "top5_loc_err": self.top5_loc_err,
            "gt_known_loc": self.gt_known_loc,
            "max_box_acc": self.max_box_acc,
            "max_box_acc_v2": self.max_box_acc_v2,
            "max_box_acc_v2_per_iou": self.max_box_acc_v2_per_iou,
            "corloc": self.corloc,
            "corloc_per_class": self.corloc_per_class,
            "pointing_game": self.pointing_game,
            "images": self.images,
            "pairs": self.pairs,
            "skipped_images": self.skipped_images,
            "missing": self.missing,
            "failed": self.failed,
            "failed_items": self.failed_items,
            "fixed_thresholds": {
                "gradcam_box_fraction": p.loc_threshold,
                "iou": p.iou_threshold,
                "pointing_tolerance_px": p.pointing_tolerance,
            },
            "tuned_on_gt": tuned,
            "max_box_acc_threshold": self.max_box_acc_threshold,
            "max_box_acc_v2_thresholds": self.max_box_acc_v2_thresholds,
            "pxap": self.pxap,
            "coco_ap": self.coco_ap,
            "coco_ap50": self.coco_ap50,
            "protocol": dataclasses.asdict(p),
            "curves": {
                "thresholds": self.thresholds,
                "box_acc_v1": self.box_acc_v1,
                "box_acc_v2": self.box_acc_v2,
                "pr_precision": self.pr_precision,
                "pr_recall": self.pr_recall,
            },
        }
        return clean(out)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LocalizationResult:
        """Rebuild the result from :meth:`to_json`'s dict (e.g. a ``metrics.json`` read back)."""
        _check_units(d)
        proto = dict(d["protocol"])
        proto["v2_ious"] = tuple(float(v) for v in proto["v2_ious"])
        c = d["curves"]
        scalars = ("top1_loc_err", "top5_loc_err", "gt_known_loc", "corloc", "pointing_game")
        return cls(
            **{k: or_nan(d[k]) for k in scalars},
            corloc_per_class={k: or_nan(v) for k, v in d["corloc_per_class"].items()},
            max_box_acc=or_nan(d["max_box_acc"]),
            max_box_acc_threshold=float(d["max_box_acc_threshold"]),
            max_box_acc_v2=or_nan(d["max_box_acc_v2"]),
            max_box_acc_v2_per_iou={k: or_nan(v) for k, v in d["max_box_acc_v2_per_iou"].items()},
            max_box_acc_v2_thresholds={k: float(v) for k, v in d["max_box_acc_v2_thresholds"].items()},
            pxap=d.get("pxap"),
            coco_ap=d.get("coco_ap"),
            coco_ap50=d.get("coco_ap50"),
            **{k: int(d[k]) for k in ("images", "pairs", "skipped_images", "missing", "failed")},
            thresholds=_floats(c["thresholds"]),
            box_acc_v1=_floats(c["box_acc_v1"]),
            box_acc_v2={k: _floats(v) for k, v in c["box_acc_v2"].items()},
            pr_precision=None if c.get("pr_precision") is None else _floats(c["pr_precision"]),
            pr_recall=None if c.get("pr_recall") is None else _floats(c["pr_recall"]),
            protocol=LocalizationProtocol(**proto),
            failed_items=dict(d.get("failed_items") or {}),
        )


@dataclass(frozen=True)
class CamMaskResult:
    """IRN's CAM-to-mask protocol (Ahn et al., CVPR 2019): a constant background plane before the argmax
    over the max-normalised maps of the labelled classes. Fractions in ``[0, 1]``.

    miou, per_class_iou: at the fixed background ``threshold``; miou_tuned, per_class_iou_tuned at
    ``best_threshold``, chosen on the ground truth being scored (optimistic, as papers do). Per-class
    dicts are by name, ``"background"`` first, None for a class never seen. sweep_thresholds,
    sweep_miou ``(T,)``: the whole sweep. images scored; missing / failed files; missing_maps: scored
    images with a labelled class that has no map (that class is never predicted).
    """

    miou: float
    threshold: float
    per_class_iou: dict[str, float | None]
    miou_tuned: float
    best_threshold: float
    per_class_iou_tuned: dict[str, float | None]
    sweep_thresholds: np.ndarray
    sweep_miou: np.ndarray
    images: int
    missing: int
    failed: int
    missing_maps: int
    failed_items: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SeedResult:
    """Seeds (255 = no label) against ground truth; fractions, None when undefined (nothing scored).

    coverage: labelled seed pixels / all pixels (wsl's one definition, the same without GT);
    precision (by name, None for a class the seeds never use) and its mean; miou and per_class_iou
    over labelled, non-void pixels only.
    """

    coverage: float | None
    mean_precision: float | None
    precision: dict[str, float | None]
    miou: float | None
    per_class_iou: dict[str, float | None]
    images: int
    missing: int
    failed: int
    failed_items: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class LabelResult:
    """Complete label maps (pseudo-labels) against ground truth: the VOC devkit's mIoU (a fraction)."""

    miou: float | None
    per_class_iou: dict[str, float | None]
    images: int
    missing: int
    failed: int
    failed_items: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SegmentationResult:
    """The segmentation evaluation of one CAM method on one split: CAM masks, seeds, pseudo-labels (each
    None when not scored); dataset_images: images in the split."""

    split: str
    cam: str
    dataset_images: int
    cams: CamMaskResult | None
    seeds: SeedResult | None
    labels: LabelResult | None

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics.json`` (strict JSON: NaN -> null, arrays -> lists)."""
        out: dict[str, Any] = {
            "units": UNITS,
            "task": "segmentation",
            "split": self.split,
            "cam": self.cam,
            "dataset_images": self.dataset_images,
        }
        c = self.cams
        if c is not None:
            out.update(
                images=c.images,
                miou=c.miou,
                threshold=c.threshold,
                per_class_iou=c.per_class_iou,
                miou_tuned=c.miou_tuned,
                best_threshold=c.best_threshold,
                threshold_tuned_on=f"ground truth of {self.split} (optimistic: papers tune it the same way)",
                per_class_iou_tuned=c.per_class_iou_tuned,
                sweep={"thresholds": c.sweep_thresholds, "miou": c.sweep_miou},
            )
            out["cams"] = {
                k: getattr(c, k) for k in ("images", "missing", "failed", "missing_maps", "failed_items")
            }
        else:
            out["cams"] = None
        out["seeds"] = None if self.seeds is None else dataclasses.asdict(self.seeds)
        out["labels"] = None if self.labels is None else dataclasses.asdict(self.labels)
        return clean(out)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SegmentationResult:
        """Rebuild the result from :meth:`to_json`'s dict (e.g. a ``metrics.json`` read back)."""
        _check_units(d)
        cams = None
        if d.get("cams") is not None:
            cams = CamMaskResult(
                miou=or_nan(d["miou"]),
                threshold=float(d["threshold"]),
                per_class_iou=dict(d["per_class_iou"]),
                miou_tuned=or_nan(d["miou_tuned"]),
                best_threshold=float(d["best_threshold"]),
                per_class_iou_tuned=dict(d["per_class_iou_tuned"]),
                sweep_thresholds=_floats(d["sweep"]["thresholds"]),
                sweep_miou=_floats(d["sweep"]["miou"]),
                **{k: int(d["cams"][k]) for k in ("images", "missing", "failed", "missing_maps")},
                failed_items=dict(d["cams"].get("failed_items") or {}),
            )
        return cls(
            split=d["split"],
            cam=d["cam"],
            dataset_images=int(d["dataset_images"]),
            cams=cams,
            seeds=None if d.get("seeds") is None else SeedResult(**d["seeds"]),
            labels=None if d.get("labels") is None else LabelResult(**d["labels"]),
        )
