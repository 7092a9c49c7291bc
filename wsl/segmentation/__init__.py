"""Segmentation from image-level labels: seeds from class maps, dense CRF, SEC's losses, grid sampling.

Pure functions over NumPy arrays and torch tensors, and SEC's training and inference pieces
(:mod:`wsl.segmentation.sec`); no configuration objects.
"""

from wsl.segmentation.crf import CRFPool, check_image, crf_map, dense_crf, label_crf
from wsl.segmentation.grid import cell_bounds, seeds_to_grid
from wsl.segmentation.jobs import label_job, seed_job
from wsl.segmentation.losses import (
    ExpansionTerms,
    constrain_loss,
    decay_for_grid,
    expansion_loss,
    gwrp,
    prob_floor,
    seeding_loss,
    seeds_to_onehot,
)
from wsl.segmentation.saliency import SECSaliency
from wsl.segmentation.seeds import (
    cam_to_mask,
    gradient_saliency,
    irn_confident_seeds,
    max_normalise,
    seeds_from_maps,
)

__all__ = [
    "CRFPool",
    "SECSaliency",
    "label_job",
    "seed_job",
    "ExpansionTerms",
    "cam_to_mask",
    "cell_bounds",
    "check_image",
    "constrain_loss",
    "crf_map",
    "decay_for_grid",
    "dense_crf",
    "expansion_loss",
    "gradient_saliency",
    "gwrp",
    "irn_confident_seeds",
    "label_crf",
    "max_normalise",
    "prob_floor",
    "seeding_loss",
    "seeds_from_maps",
    "seeds_to_grid",
    "seeds_to_onehot",
]
