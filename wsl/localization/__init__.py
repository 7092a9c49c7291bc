"""Maps -> boxes: pure functions (Grad-CAM protocol, threshold rules, wsolevaluation sweeps)."""

from wsl.localization.boxes import (
    boxes_from_map,
    check_map,
    minmax_normalize,
    otsu_level,
    quantize_map,
    sweep_boxes,
    threshold_cut,
)

__all__ = [
    "boxes_from_map",
    "check_map",
    "minmax_normalize",
    "otsu_level",
    "quantize_map",
    "sweep_boxes",
    "threshold_cut",
]
