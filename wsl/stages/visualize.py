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
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from wsl import io
from wsl.cam import grid
from wsl.data.transforms import to_tensor
from wsl.stages import UserError, common
from wsl.stages.benchmark import resolve_methods
from wsl.stages.benchmark_overlays import auto_layers, class_maps, class_rows, panel
from wsl.stages.common import ensure_classifier

log = logging.getLogger(__name__)


def _choose(cfg: DictConfig, ds) -> list[int]:
    st = cfg.stage
    if st.ids:
        missing = [i for i in st.ids if str(i) not in ds.ids]
        if missing:
            raise UserError(f"stage.ids: {missing} are not images of split {ds.split!r}")
        return [ds.ids.index(str(i)) for i in st.ids]
    return list(range(min(int(st.limit), len(ds))))


def _failures(
    cfg: DictConfig, ds, model: torch.nn.Module, device: torch.device, todo: int
) -> list[tuple[int, list[int], np.ndarray]]:
    """The first ``todo`` images whose predicted class set differs from the label: (index, classes, probs)."""
    found, labels = [], ds.labels()
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    for i in range(len(ds)):
        if len(found) >= todo:
            break
        try:
            image = ds.load_image(i)
        except OSError as e:
            log.warning("visualize: skipping %s: %s", ds.ids[i], e)
            continue
        with torch.inference_mode():
            x = to_tensor(image, mean, std)[None].to(device)
            probs = torch.sigmoid(model(x).float())[0].cpu().numpy()
        pred, true = (
            set(np.flatnonzero(probs > cfg.stage.score_threshold)),
            set(np.flatnonzero(labels[i] > 0)),
        )
        if pred != true:
            found.append((i, sorted(int(c) for c in pred | true), probs))
    return found


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    common.set_seed(cfg.seed)
    split = common.split_name(cfg)
    methods = resolve_methods(st.methods)
    ensure_classifier(cfg)
    model = common.load_classifier(cfg, device)
    ds = common.build_dataset(cfg, split)
    chosen = _choose(cfg, ds)
    out = common.run_dir(cfg) / "visualize" / split
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    target, method = str(cfg.cam.target_layer), str(cfg.cam.method)
    layers: list[str] | None = [str(v) for v in st.layers] if st.layers else None
    empty = {"boxes": np.zeros((0, 4), np.int64), "labels": np.zeros(0, np.int64)}
    written: list[Path] = []
    for i in common.progress(chosen, f"visualize {split}"):
        classes = np.flatnonzero(ds.labels()[i] > 0).tolist()
        sample = ds[i]  # never raises: an unreadable image carries an error instead
        if sample["image"] is None or not classes:
            log.warning("visualize: skipping %s: %s", ds.ids[i], sample["error"] or "no labelled class")
            continue
        image = sample["image"]
        x = to_tensor(image, mean, std)[None].to(device)
        gt = ds.load_boxes(i) if ds.has_boxes else empty
        names = [f"{ds.ids[i]}: {ds.class_names[c]}" for c in classes]
        by_method = {m: class_maps(model, m, target, x, classes) for m in methods}
        tiles, titles = class_rows(image, gt, classes, names, by_method, st.alpha)
        written.append(_save(out / "methods" / f"{ds.ids[i]}.png", tiles, titles, len(methods) + 1))
        layers = layers or auto_layers(model, target, x)
        by_layer = {f"{method} @ {n}": class_maps(model, method, n, x, classes) for n in layers}
        tiles, titles = class_rows(image, gt, classes, names, by_layer, st.alpha)
        written.append(_save(out / "layers" / f"{ds.ids[i]}.png", tiles, titles, len(layers) + 1))
    failures = _failures(cfg, ds, model, device, int(st.failures)) if st.failures else []
    for i, classes, probs in failures:
        image = ds.load_image(i)
        gt = ds.load_boxes(i) if ds.has_boxes else empty
        true = set(np.flatnonzero(ds.labels()[i] > 0).tolist())
        maps = class_maps(model, method, target, to_tensor(image, mean, std)[None].to(device), classes)
        tiles, titles = [panel(image, None, gt["boxes"])], [f"{ds.ids[i]} ({method})"]
        for k, c in enumerate(classes):
            kind = ("TP" if probs[c] > st.score_threshold else "FN") if c in true else "FP"
            tiles.append(panel(image, maps[k], gt["boxes"][gt["labels"] == c], alpha=st.alpha))
            titles.append(f"{kind} {ds.class_names[c]} {probs[c]:.2f}")
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


def _save(path: Path, tiles: list[np.ndarray], titles: list[str], ncols: int) -> Path:
    io.write_image(path, grid(tiles, titles, ncols=ncols))
    return path
