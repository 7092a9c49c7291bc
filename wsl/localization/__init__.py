"""Maps -> boxes: pure functions (Grad-CAM protocol, threshold rules, wsolevaluation sweeps), and the
boxes of a folder of stored maps in COCO's results format (:mod:`wsl.localization.coco`)."""

from wsl.localization.boxes import (
    boxes_from_map,
    check_map,
    minmax_normalize,
    otsu_level,
    quantize_map,
    sweep_boxes,
    threshold_cut,
)
from wsl.localization.coco import BoxRecords, dataset_boxes, image_records

__all__ = [
    "BoxRecords",
    "dataset_boxes",
    "image_records",
    "boxes_from_map",
    "check_map",
    "minmax_normalize",
    "otsu_level",
    "quantize_map",
    "sweep_boxes",
    "threshold_cut",
]
