"""stage=visualize: overlays of chosen images -> ``visualize/<split>/{methods,layers,failures}/<id>.png``.

Maps are computed here with :class:`wsl.cam.CAMExtractor` on the run's classifier (single scale, no flip,
ReLU, each map divided by its maximum, bilinear to the image), not read from stage=cams, so any layer
works. For every chosen image (``stage.ids`` or the first ``stage.limit`` of the split), one row per
labelled class:

- ``methods/<id>.png``: the image with its GT boxes, then one overlay per method of ``stage.methods``;
- ``layers/<id>.png``: the run's ``cam.method`` at each layer of ``stage.layers`` (default: the last
  module of each resolution up to ``cam.target_layer``, e.g. a ResNet's layer1 to layer4);
- ``failures/<id>.png``: the first ``stage.failures`` misclassified images of the split (predicted set,
  ``sigmoid(logit) > stage.score_threshold``, differs from the label) with the maps of the predicted and
  the true classes, each titled TP (predicted and true), FP (predicted, not true) or FN (missed).

The drawing helpers live in :mod:`wsl.benchmark.overlays`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from wsl import io
from wsl.benchmark import (
    auto_layers,
    class_maps,
    class_rows,
    failure_tiles,
    gt_boxes,
    misclassified,
    pick_images,
    resolve_methods,
)
from wsl.cam import grid
from wsl.data.transforms import to_tensor
from wsl.progress import track
from wsl.stages import common

log = logging.getLogger(__name__)


def _save(path: Path, tiles: list[np.ndarray], titles: list[str], ncols: int) -> Path:
    io.write_image(path, grid(tiles, titles, ncols=ncols))
    return path


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    common.set_seed(cfg.seed)
    split = common.split_name(cfg)
    methods = resolve_methods(st.methods)
    model = common.load_classifier(cfg, device)
    ds = common.build_dataset(cfg, split)
    chosen = pick_images(ds, st.ids, int(st.limit), "stage.ids")
    out = common.layout(cfg).visualize(split)
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    target, method = common.cam_layer(cfg), str(cfg.cam.method)
    layers: list[str] | None = [str(v) for v in st.layers] if st.layers else None
    labels = ds.labels()
    written: list[Path] = []
    for i in track(chosen, f"visualize {split}"):
        classes = np.flatnonzero(labels[i] > 0).tolist()
        sample = ds[i]  # never raises: an unreadable image carries an error instead
        if sample["image"] is None or not classes:
            log.warning("visualize: skipping %s: %s", ds.ids[i], sample["error"] or "no labelled class")
            continue
        image, gt = sample["image"], gt_boxes(ds, i)
        x = to_tensor(image, mean, std)[None].to(device)
        names = [f"{ds.ids[i]}: {ds.class_names[c]}" for c in classes]
        by_method = {m: class_maps(model, m, target, x, classes) for m in methods}
        tiles, titles = class_rows(image, gt, classes, names, by_method, st.alpha)
        written.append(_save(out / "methods" / f"{ds.ids[i]}.png", tiles, titles, len(methods) + 1))
        # a list of CAM layers: each one's own maps; one layer: every resolution up to it
        layers = layers or (target if isinstance(target, list) else auto_layers(model, target, x))
        by_layer = {f"{method} @ {n}": class_maps(model, method, n, x, classes) for n in layers}
        tiles, titles = class_rows(image, gt, classes, names, by_layer, st.alpha)
        written.append(_save(out / "layers" / f"{ds.ids[i]}.png", tiles, titles, len(layers) + 1))

    def unreadable(image_id: str, e: Exception) -> None:
        log.warning("visualize: skipping %s: %s", image_id, e)

    threshold = float(st.score_threshold)
    failures = misclassified(model, ds, mean, std, device, threshold, int(st.failures), unreadable)
    for i, classes, probs in failures:
        image = ds.load_image(i)
        maps = class_maps(model, method, target, to_tensor(image, mean, std)[None].to(device), classes)
        tiles, titles = failure_tiles(
            image,
            gt_boxes(ds, i),
            labels[i],
            classes,
            probs,
            maps,
            ds.class_names,
            threshold,
            st.alpha,
            f"{ds.ids[i]} ({method})",
        )
        written.append(_save(out / "failures" / f"{ds.ids[i]}.png", tiles, titles, len(tiles)))
    common.write_manifest(
        out,
        cfg,
        started,
        done=len(written),
        methods=methods,
        layers=layers or [],
        images=[ds.ids[i] for i in chosen],
        failures=[ds.ids[i] for i, _, _ in failures],
    )
    log.info(
        "visualize: %d pictures of %d images (+ %d misclassified) -> %s",
        len(written),
        len(chosen),
        len(failures),
        out,
    )
    return {
        "pictures": len(written),
        "images": len(chosen),
        "failures": len(failures),
        "layers": layers or [],
    }
