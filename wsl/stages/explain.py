"""stage=explain: one image (or a folder of them) explained by the run's classifier -> ``explain/<stem>.png``.

For each image: the image, then one overlay per top-scoring class (``stage.top_k``) with the ``cam``
group's method at its target layer, titled with the class and its probability (:func:`wsl.cam.explain`).
The pytorch-grad-cam user's "explain this picture" in one command; any classifier works through
``model=...`` and ``model.checkpoint=...``. An unreadable image is skipped and counted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from wsl import io
from wsl.cam import explain
from wsl.errors import UserError
from wsl.progress import track
from wsl.stages import common

log = logging.getLogger(__name__)
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    source = Path(st.image).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES)
    elif source.is_file():
        files = [source]
    else:
        raise UserError(f"stage.image={st.image}: no such image or folder")
    if not files:
        raise UserError(f"stage.image={st.image}: the folder holds no {'/'.join(SUFFIXES)} image")
    device = common.resolve_device(cfg.device)
    model = common.load_classifier(cfg, device)
    out = common.layout(cfg).explain()
    shown, failed = {}, 0
    for path in track(files, f"explain {cfg.cam.name}"):
        try:
            image = io.read_image(path)
        except (OSError, ValueError, SyntaxError) as e:
            log.warning("skipping %s: %s", path, e)
            failed += 1
            continue
        picture, classes = explain(model, image, str(cfg.cam.method), common.cam_layer(cfg),
                                   cfg.dataset.mean, cfg.dataset.std, cfg.dataset.class_names, st.top_k,
                                   st.alpha)  # fmt: skip
        io.write_image(out / f"{path.stem}.png", picture)
        shown[path.name] = classes
        log.info("%s: %s", path.name, ", ".join(f"{name} {100 * p:.0f} %" for name, p in classes))
    common.write_manifest(out, cfg, started, done=len(shown), failed=failed, classes=shown)
    log.info("explain: %d image(s) explained, %d unreadable -> %s", len(shown), failed, out)
    return {"images": len(shown), "failed": failed, "classes": shown}
