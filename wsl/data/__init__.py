"""Datasets: the procedural toy generator and the loaders for PASCAL VOC, COCO and a folder of images.

Every loader is a :class:`~wsl.data.base.WSLDataset` (see ``base.py`` for the sample format). No Hydra
here: the dataset YAMLs in ``conf/dataset/`` instantiate these classes with ``_target_``.
"""

from wsl.data.base import DatasetNotFoundError, WSLDataset, collate_samples
from wsl.data.coco import COCODataset
from wsl.data.folder import FolderDataset
from wsl.data.toy import TOY_CATEGORY_IDS, TOY_CLASSES, ensure_toy
from wsl.data.toy_stats import toy_statistics
from wsl.data.voc import VOC_CLASSES, VOCDataset

__all__ = [
    "COCODataset",
    "DatasetNotFoundError",
    "FolderDataset",
    "TOY_CATEGORY_IDS",
    "TOY_CLASSES",
    "VOCDataset",
    "VOC_CLASSES",
    "WSLDataset",
    "collate_samples",
    "ensure_toy",
    "toy_statistics",
]
