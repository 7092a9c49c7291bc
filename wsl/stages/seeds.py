"""stage=seeds: localization cues for SEC from the CAMs of a split (Kolesnikov & Lampert, ECCV 2016).

Reads ``cams/<cam>/<split>/<id>.npz``, keeps the maps of the image's LABELLED classes only (the cams file
may hold predicted classes too), upsamples them to the image size and writes
``seeds/<cam>/<split>/<id>.png`` (VOC palette; 0 background, class index + 1, 255 no cue). Rules:

- foreground: strictly above ``fg_thresh`` (SEC: 0.2) of each class map's maximum;
- background ``threshold``: every class map below ``bg_thresh``; ``saliency``: SEC's lowest ``bg_fraction``
  (10 %) of the gradient saliency of the run's classifier (:mod:`wsl.stages.seeds_saliency`); ``irn``: IRN's
  confident seeds (Ahn et al., CVPR 2019): background planes ``irn_fg``/``irn_bg`` (0.30/0.05), each
  refined by a label CRF (the foreground threshold and overlap rule then do not apply);
- overlaps: ``smaller`` (SEC: the smaller cue wins) or ``argmax``.

Complete PNGs are skipped on a re-run (``stage.overwrite`` redoes them); under torchrun images are sharded
over ranks; seed rules (CRFs for ``irn``) run in a process pool of ``crf_processes``. ``metrics.json``
holds ``coverage`` (labelled seed pixels / all pixels) and, where the split has masks, a ``seeds``
section: per-class seed precision, the labelled-pixel mIoU and ``coverage`` relative to non-void GT pixels.
"""

from __future__ import annotations

import logging
import time
import zipfile
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wsl import dist, io
from wsl.segmentation import CRFPool
from wsl.stages import common
from wsl.stages.camfiles import require_cams, upsample
from wsl.stages.seeds_saliency import saliency_layer, saliency_map
from wsl.stages.segjobs import seed_job
from wsl.stages.segreport import pct
from wsl.stages.segscore import masks_or_none, score_seeds

log = logging.getLogger(__name__)


def _prepare(ds, i: int, folder, st: DictConfig, sal: tuple | None, cfg: DictConfig, device) -> tuple | str:
    """The job arguments of image ``i``, or a reason to skip it."""
    try:
        image = ds.load_image(i)
        rec = io.load_cams(folder / f"{ds.ids[i]}.npz")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        return str(e)
    hw = tuple(int(v) for v in rec["image_size"])
    if image.shape[:2] != hw:
        return f"image is {image.shape[:2]}, its CAM file says {hw}"
    present = np.flatnonzero(ds.labels()[i] > 0)
    keep = np.isin(rec["classes"], present)
    if keep.sum() < present.size:
        return f"no map for labelled classes {sorted(set(present) - set(rec['classes']))}"
    saliency = saliency_map(*sal, image, cfg, device) if sal else None
    return upsample(rec["maps"][keep], hw), rec["classes"][keep] + 1, image, saliency, _rule(st)


def _rule(st: DictConfig) -> dict[str, Any]:
    keys = ("background", "fg_thresh", "bg_thresh", "bg_fraction", "overlap", "irn_fg", "irn_bg")
    return {k: st[k] for k in keys}


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split = common.split_name(cfg)
    cams = require_cams(cfg, split)
    out = common.run_dir(cfg) / "seeds" / cfg.cam.name / split
    ds = common.build_dataset(cfg, split)
    sal = saliency_layer(cfg, device) if st.background == "saliency" else None  # SEC's background cue
    mine, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (out / f"{i}.png").is_file(), "seeds", out
    )
    done = failed = 0
    bar = common.progress(None, f"seeds {cfg.cam.name} {split}", total=len(todo))
    chunk = 4 * max(1, st.crf_processes)
    with CRFPool(st.crf_processes if todo else 0) as pool:
        for start in range(0, len(todo), chunk):
            jobs, ids = [], []
            for i in todo[start : start + chunk]:
                args = _prepare(ds, i, cams, st, sal, cfg, device)
                if isinstance(args, str):
                    log.warning("skipping %s: %s", ds.ids[i], args)
                    failed += 1
                    continue
                jobs.append(args)
                ids.append(ds.ids[i])
            for image_id, seeds in zip(ids, pool.imap(seed_job, jobs)):
                io.write_label_png(out / f"{image_id}.png", seeds)
                done += 1
            bar.update(len(todo[start : start + chunk]))
    bar.close()
    done, skipped, failed = (int(v) for v in dist.all_reduce_sum([done, skipped, failed]))
    metrics: dict[str, Any] = {
        "split": split,
        "images": done + skipped,
        "done": done,
        "skipped": skipped,
        "failed": failed,
        "rule": _rule(st),
    }
    names = ["background", *ds.class_names]
    gt = masks_or_none(cfg, split) if getattr(ds, "has_masks", False) else None
    if gt is not None:
        metrics["seeds"] = score_seeds(gt, mine, out, names)
        metrics["coverage"] = metrics["seeds"]["labelled_fraction"]
    else:
        metrics["coverage"] = _coverage(ds, mine, out)
    dist.barrier()
    common.write_metrics(out, metrics)
    common.write_manifest(out, cfg, started, done=done, skipped=skipped, failed=failed)
    seed = metrics.get("seeds") or {}
    log.info("seeds %s/%s: %d written, %d skipped, %d failed; coverage %s%%%s", cfg.cam.name, split, done,
             skipped, failed, pct(metrics["coverage"]), f", mean precision {pct(seed['mean_precision'])}%, "
             f"labelled-pixel mIoU {pct(seed['miou'])}" if seed else "")  # fmt: skip
    return metrics


def _coverage(ds, indices: list[int], folder) -> float | None:
    """Fraction of labelled seed pixels over all pixels of the written PNGs (no ground truth needed)."""
    labelled = total = 0
    for i in indices:
        path = folder / f"{ds.ids[i]}.png"
        if path.is_file():
            seeds = io.read_label_png(path)
            labelled, total = labelled + int((seeds != 255).sum()), total + seeds.size
    labelled, total = dist.all_reduce_sum([labelled, total])
    return labelled / total if total else None
