"""Pure metrics over arrays, with accumulate/compute objects for datasets. They never mutate inputs.

Every accumulator shares one contract: ``update`` (one item), ``merge(other) -> self`` (what
``wsl.dist.merge_all`` uses across processes; settings must match, else ``ValueError``) and ``compute``
(a frozen dataclass). Every metric is a fraction in ``[0, 1]``; percent only on display.
"""

from wsl.metrics.boxes import as_boxes, box_iou, clip_boxes
from wsl.metrics.classification import average_precision, f1_scores, mean_average_precision
from wsl.metrics.faithfulness import average_drop_increase, deletion_insertion
from wsl.metrics.localization import (
    LocalizationAccumulator,
    LocalizationScores,
    gradcam_box,
    localized,
    pointing_hit,
)
from wsl.metrics.merging import check_mergeable
from wsl.metrics.sanity import cascading_randomization
from wsl.metrics.sanity import flag as sanity_flag
from wsl.metrics.segmentation import (
    ConfusionAccumulator,
    IoUResult,
    SeedScoreAccumulator,
    SeedScores,
    SweepResult,
    ThresholdSweep,
    confusion_matrix,
    miou,
    seed_scores,
)
from wsl.metrics.wsol import (
    MaxBoxAccResult,
    MaxBoxAccumulator,
    PxAPAccumulator,
    PxAPResult,
    best_iou_per_threshold,
    default_thresholds,
    max_box_acc,
    pxap,
)

__all__ = [
    "ConfusionAccumulator",
    "IoUResult",
    "LocalizationAccumulator",
    "LocalizationScores",
    "MaxBoxAccResult",
    "PxAPResult",
    "check_mergeable",
    "as_boxes",
    "average_drop_increase",
    "best_iou_per_threshold",
    "cascading_randomization",
    "clip_boxes",
    "default_thresholds",
    "deletion_insertion",
    "gradcam_box",
    "localized",
    "pointing_hit",
    "sanity_flag",
    "MaxBoxAccumulator",
    "PxAPAccumulator",
    "SeedScoreAccumulator",
    "SeedScores",
    "SweepResult",
    "ThresholdSweep",
    "average_precision",
    "box_iou",
    "confusion_matrix",
    "f1_scores",
    "max_box_acc",
    "mean_average_precision",
    "miou",
    "pxap",
    "seed_scores",
]
