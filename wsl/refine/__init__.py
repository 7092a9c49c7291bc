"""Affinity refinement of class maps: IRN (Ahn, Cho & Kwak, CVPR 2019) and PSA (Ahn & Kwak, CVPR 2018).

- :mod:`~wsl.refine.pairs`: pixel pairs within a radius, inter-pixel labels, affinities from a boundary
  map or an embedding;
- :mod:`~wsl.refine.affinity_net`: the head on a classifier's frozen multi-level features;
- :mod:`~wsl.refine.losses`: the balanced affinity / class-boundary loss;
- :mod:`~wsl.refine.randomwalk`: the sparse random walk and the pseudo-labels it gives;
- :mod:`~wsl.refine.data`: the affinity training set and class maps of the labelled classes.

No configuration objects: everything takes plain arguments.
"""

from wsl.refine.affinity_net import KINDS, STRIDE, AffinityNet, backbone_levels, grid_size
from wsl.refine.data import AffinityTrainSet, collate, labelled_maps
from wsl.refine.losses import LOSS_TERMS, affinity_loss, set_sizes
from wsl.refine.pairs import (
    PairLabels,
    boundary_affinity,
    feature_affinity,
    offsets,
    pair_labels,
    path_cells,
    valid_pairs,
)
from wsl.refine.randomwalk import (
    affinity_matrix,
    propagate,
    random_walk,
    rw_scores,
    transition_matrix,
)

__all__ = [
    "KINDS",
    "LOSS_TERMS",
    "STRIDE",
    "AffinityNet",
    "AffinityTrainSet",
    "PairLabels",
    "affinity_loss",
    "affinity_matrix",
    "backbone_levels",
    "boundary_affinity",
    "collate",
    "feature_affinity",
    "grid_size",
    "labelled_maps",
    "offsets",
    "pair_labels",
    "path_cells",
    "propagate",
    "random_walk",
    "rw_scores",
    "set_sizes",
    "transition_matrix",
    "valid_pairs",
]
