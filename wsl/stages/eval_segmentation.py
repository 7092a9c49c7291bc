"""The segmentation task of stage=eval: CAM masks, seeds and pseudo-labels against ground-truth masks.

- CAM masks follow IRN's protocol (Ahn et al., CVPR 2019): a constant background plane before the argmax
  over the max-normalised maps of the image's labelled classes, at the fixed threshold
  ``stage.miou_threshold`` (0.15), and over a grid of thresholds (``stage.sweep``) gathered in ONE pass
  (:class:`wsl.metrics.segmentation.ThresholdSweep`). The best threshold is chosen on the ground truth of
  the split being scored: ``metrics.json`` says so (``threshold_tuned_on``).
- Seeds (``seeds/<cam>/<split>/``, when present): coverage, per-class precision, labelled-pixel mIoU.
- Pseudo-labels (``labels/<cam>/<split>/``, when present): mIoU.

mIoU is the VOC devkit's: one confusion matrix over the whole split. Images whose files are missing or
unreadable are counted (``missing``, ``failed``) and logged; they never enter a matrix.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wsl import dist, io
from wsl.metrics.segmentation import ConfusionAccumulator, ThresholdSweep, miou
from wsl.segmentation import cam_to_mask
from wsl.stages import UserError, common
from wsl.stages.camfiles import require_cams, upsample
from wsl.stages.segreport import markdown, plot_sweep, summary
from wsl.stages.segscore import by_name, clean, reduce_array, score_labels, score_seeds

log = logging.getLogger(__name__)

DEFAULT_SWEEP = {"start": 0.0, "stop": 0.6, "step": 0.01}


def sweep_thresholds(st: Any) -> np.ndarray:
    """The background thresholds to sweep: ``stage.sweep`` (a list, or ``{start, stop, step}``) if given,
    else ``stage.sweep_start`` .. ``stage.sweep_stop`` (included) by ``stage.sweep_step`` (0.0..0.6 by 0.01).
    """
    spec = st.get("sweep", None)
    if spec is not None and not hasattr(spec, "keys"):
        values = np.asarray(list(spec), dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise UserError("stage.sweep: give a non-empty list of thresholds")
        return values
    src = spec if spec is not None else {k: st.get(f"sweep_{k}", None) for k in DEFAULT_SWEEP}
    start, stop, step = (float(DEFAULT_SWEEP[k] if src.get(k) is None else src[k]) for k in DEFAULT_SWEEP)
    if step <= 0 or stop < start:
        raise UserError(f"stage.sweep_*: need step > 0 and stop >= start, got {start}, {stop}, {step}")
    return np.round(np.arange(start, stop + step / 2, step), 6)


def score_cam_masks(
    ds, indices: list[int], folder: Path, threshold: float, thresholds: np.ndarray, split: str
):
    """Fixed-threshold confusion matrix, per-threshold matrices and counts of the CAM masks, summed over
    ranks (each rank scores ``indices``, its share)."""
    n = ds.num_classes + 1
    fixed, sweep = ConfusionAccumulator(n), ThresholdSweep(n, thresholds)
    counts = {"images": 0, "missing": 0, "failed": 0, "missing_maps": 0}
    labels = ds.labels()
    for i in common.progress(indices, f"eval segmentation {split}"):
        path = folder / f"{ds.ids[i]}.npz"
        if not path.is_file():
            counts["missing"] += 1
            continue
        try:
            rec, gt = io.load_cams(path), ds.load_mask(i)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            counts["failed"] += 1
            log.warning("cannot score %s: %s", path, e)
            continue
        present = np.flatnonzero(labels[i] > 0)
        keep = np.isin(rec["classes"], present)
        if keep.sum() < present.size:  # a labelled class without a map is never predicted: say so
            counts["missing_maps"] += 1
            log.warning(
                "%s: no map for labelled classes %s", path, sorted(set(present) - set(rec["classes"]))
            )
        full = upsample(rec["maps"][keep], tuple(int(v) for v in rec["image_size"]))
        if full.shape[1:] != gt.shape:
            counts["failed"] += 1
            log.warning("cannot score %s: maps %s, ground truth %s", path, full.shape[1:], gt.shape)
            continue
        classes = rec["classes"][keep] + 1  # mask value = class index + 1
        fixed.update(gt, cam_to_mask(full, classes, threshold))
        sweep.update(full, classes, gt)
        counts["images"] += 1
    confs = reduce_array(sweep.confusion_matrices())
    totals = reduce_array(np.array(list(counts.values()), dtype=np.int64))
    return reduce_array(fixed.conf), confs, dict(zip(counts, (int(v) for v in totals)))


def _best(mious: np.ndarray, thresholds: np.ndarray) -> int:
    """Index of the best mIoU, the lowest threshold among equal bests (as ThresholdSweep.compute)."""
    if np.isnan(mious).all():
        return 0
    cand = np.flatnonzero(mious == np.nanmax(mious))
    return int(cand[np.argmin(thresholds[cand])])


def evaluate_segmentation(cfg: DictConfig, split: str, out: Path, ds=None) -> dict:
    """Score CAM masks (+ seeds and pseudo-labels where present) of ``split``; write into ``out``.

    Writes ``metrics.json``, ``metrics.md`` and ``miou_vs_threshold.png`` (rank 0). Returns the metrics.
    Config: ``stage.miou_threshold`` (default 0.15), ``stage.sweep_start/stop/step`` (0.0, 0.6, 0.01).
    ``ds`` is the split's dataset if the caller already built it.
    """
    threshold = float(cfg.stage.get("miou_threshold", 0.15))
    thresholds = sweep_thresholds(cfg.stage)
    ds = common.build_dataset(cfg, split, with_masks=True) if ds is None else ds
    if not getattr(ds, "has_masks", False):
        raise UserError(f"split {split!r} of dataset {cfg.dataset.name} has no masks: nothing to score")
    names = ["background", *ds.class_names]
    mine = dist.shard(list(range(len(ds))))
    fixed_conf, confs, counts = score_cam_masks(
        ds, mine, require_cams(cfg, split), threshold, thresholds, split
    )
    if counts["images"] == 0:
        raise UserError(f"no CAM file of split {split!r} could be scored ({counts})")
    m_fixed, iou_fixed = miou(fixed_conf)
    per_t = [miou(c) for c in confs]
    mious = np.array([m for m, _ in per_t])
    best = _best(mious, thresholds)
    metrics: dict[str, Any] = {
        "task": "segmentation",
        "split": split,
        "cam": cfg.cam.name,
        "dataset_images": len(ds),
        "images": counts["images"],
        "miou": m_fixed,
        "threshold": threshold,
        "per_class_iou": by_name(iou_fixed, names),
        "miou_tuned": float(mious[best]),
        "best_threshold": float(thresholds[best]),
        "threshold_tuned_on": f"ground truth of {split} (optimistic: papers tune it the same way)",
        "per_class_iou_tuned": by_name(per_t[best][1], names),
        "sweep": {"thresholds": thresholds, "miou": mious},
        "cams": counts,
    }
    run = common.run_dir(cfg)
    for key, scorer, sub in (("seeds", score_seeds, "seeds"), ("labels", score_labels, "labels")):
        folder = run / sub / cfg.cam.name / split
        metrics[key] = scorer(ds, mine, folder, names) if folder.is_dir() else None
    metrics = clean(metrics)
    if dist.is_main():
        io.write_json(Path(out) / "metrics.json", metrics)
        io.write_text(Path(out) / "metrics.md", markdown(metrics, names))
        plot_sweep(Path(out) / "miou_vs_threshold.png", metrics)
    log.info(
        "segmentation %s/%s: CAM mIoU %.1f at bg %.2f, %.1f at bg %.2f (tuned on GT)%s%s",
        cfg.cam.name,
        split,
        100 * m_fixed,
        threshold,
        100 * metrics["miou_tuned"],
        metrics["best_threshold"],
        summary("seeds", metrics["seeds"]),
        summary("pseudo-labels", metrics["labels"]),
    )
    return metrics
