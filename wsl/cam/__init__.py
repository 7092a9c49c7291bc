"""The CAM engine: every requested class of every image from one forward pass and one batched gradient.

    from wsl.cam import CAMExtractor, METHODS
    with CAMExtractor(model, method="gradcam", target_layer="layer4") as ext:
        maps = ext(images, classes)      # (B, K, h, w), raw: not normalised, not resized

Post-processing (``normalize_maps``, ``upsample_maps``), IRN/PSA multi-scale + flip aggregation
(``multiscale_maps``) and drawing helpers (``colorize``, ``overlay``, ``draw_boxes``, ``grid``) are
separate functions.
"""

from wsl.cam.extractor import CAMExtractor
from wsl.cam.methods import METHODS
from wsl.cam.overlay import colorize, draw_boxes, grid, overlay
from wsl.cam.postprocess import normalize_maps, upsample_maps
from wsl.cam.tta import multiscale_maps

__all__ = [
    "METHODS",
    "CAMExtractor",
    "colorize",
    "draw_boxes",
    "grid",
    "multiscale_maps",
    "normalize_maps",
    "overlay",
    "upsample_maps",
]
