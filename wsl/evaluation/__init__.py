"""Scoring of stored outputs (CAM files, box results, seeds, pseudo-labels) against a dataset.

No configuration: plain arguments in, typed frozen results out, usable from a notebook. Every metric is a
fraction in ``[0, 1]`` (percent only in ``metrics.md`` and plots). Each scorer loops over images with an
evaluator (``update`` / ``merge`` / ``compute``); ``reduce=wsl.dist.merge_all`` merges them across
processes when each one scored a shard (``indices``).

    from wsl.data.voc import VOCDataset
    from wsl.evaluation import evaluate_localization, save_localization

    ds = VOCDataset(root, "val", with_boxes=True)
    result = evaluate_localization(ds, "outputs/run/cams/gradcam/val")
    result.gt_known_loc, result.max_box_acc_v2
"""

from wsl.evaluation.common import MissingMapError, cams_of_labelled
from wsl.evaluation.labelmaps import (
    LabelEvaluator,
    SeedCoverage,
    SeedCoverageEvaluator,
    SeedEvaluator,
    score_labels,
    score_seeds,
    seed_coverage,
)
from wsl.evaluation.localization import LocalizationEvaluator, coco_box_ap, evaluate_localization
from wsl.evaluation.loop import loop_figures, loop_markdown
from wsl.evaluation.network import NetworkResult, evaluate_network
from wsl.evaluation.report import save_localization, save_segmentation, summary
from wsl.evaluation.results import (
    CamMaskResult,
    LabelResult,
    LocalizationProtocol,
    LocalizationResult,
    SeedResult,
    SegmentationResult,
)
from wsl.evaluation.segmentation import (
    CamMaskEvaluator,
    evaluate_cam_masks,
    evaluate_segmentation,
    sweep_thresholds,
)

__all__ = [
    "CamMaskEvaluator",
    "CamMaskResult",
    "LabelEvaluator",
    "LabelResult",
    "SeedCoverage",
    "SeedCoverageEvaluator",
    "LocalizationEvaluator",
    "LocalizationProtocol",
    "LocalizationResult",
    "MissingMapError",
    "NetworkResult",
    "SeedEvaluator",
    "SeedResult",
    "SegmentationResult",
    "cams_of_labelled",
    "coco_box_ap",
    "evaluate_cam_masks",
    "evaluate_localization",
    "evaluate_network",
    "evaluate_segmentation",
    "loop_figures",
    "loop_markdown",
    "seed_coverage",
    "save_localization",
    "save_segmentation",
    "score_labels",
    "score_seeds",
    "summary",
    "sweep_thresholds",
]
