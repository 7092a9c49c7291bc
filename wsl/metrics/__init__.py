"""Pure metrics over arrays, with accumulate/compute objects for datasets. They never mutate inputs."""

from wsl.metrics.boxes import box_iou
from wsl.metrics.classification import average_precision, f1_scores, mean_average_precision
from wsl.metrics.segmentation import (
    ConfusionAccumulator,
    SeedScoreAccumulator,
    SeedScores,
    SweepResult,
    ThresholdSweep,
    confusion_matrix,
    miou,
    seed_scores,
)
from wsl.metrics.wsol import MaxBoxAccumulator, PxAPAccumulator, max_box_acc, pxap

__all__ = [
    "ConfusionAccumulator",
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
