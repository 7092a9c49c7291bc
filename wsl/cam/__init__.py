"""The CAM engine: every requested class of every image from one forward pass and one batched gradient.

    from wsl.cam import CAMExtractor, METHODS
    with CAMExtractor(model, method="gradcam", target_layer="layer4") as ext:
        maps = ext(images, classes)      # (B, K, h, w), raw: not normalised, not resized

Post-processing (``normalize_maps``, ``upsample_maps``), IRN/PSA multi-scale + flip aggregation
(``multiscale_maps``) and drawing helpers (``colorize``, ``overlay``, ``draw_boxes``, ``grid``) are
separate functions. ``write_dataset_cams`` stores the maps of a whole dataset (stage=cams), and
``load_full`` reads a stored file back at image resolution.
"""

from wsl.cam.dataset import CamCounts, CamSettings, write_dataset_cams
from wsl.cam.explain import explain
from wsl.cam.extractor import CAMExtractor
from wsl.cam.methods import METHODS
from wsl.cam.overlay import colorize, draw_boxes, grid, overlay
from wsl.cam.postprocess import normalize_maps, upsample_maps
from wsl.cam.stored import load_full, upsample_stored
from wsl.cam.tta import multiscale_maps

__all__ = [
    "METHODS",
    "CAMExtractor",
    "CamCounts",
    "CamSettings",
    "load_full",
    "upsample_stored",
    "write_dataset_cams",
    "colorize",
    "draw_boxes",
    "explain",
    "grid",
    "multiscale_maps",
    "normalize_maps",
    "overlay",
    "upsample_maps",
]
