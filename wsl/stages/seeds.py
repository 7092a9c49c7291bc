"""stage=seeds: localization cues for SEC from the CAMs of a split (Kolesnikov & Lampert, ECCV 2016).

Reads ``cams/<cam>/<split>/<id>.npz``, keeps the maps of the image's LABELLED classes only (the cams file
may hold predicted classes too), upsamples them to the image size and writes
``seeds/<cam>/<split>/<id>.png`` (VOC palette; 0 background, class index + 1, 255 no cue) with the rule
of :func:`wsl.segmentation.seed_job`:

- foreground: strictly above ``fg_thresh`` (SEC: 0.2) of each class map's maximum;
- background ``threshold``: every class map below ``bg_thresh``; ``saliency``: SEC's lowest ``bg_fraction``
  (10 %) of the classifier's gradient saliency (:class:`wsl.segmentation.SECSaliency`); ``irn``: IRN's
  confident seeds (Ahn et al., CVPR 2019), background planes ``irn_fg``/``irn_bg`` (0.30/0.05);
- overlaps: ``smaller`` (SEC: the smaller cue wins) or ``argmax``.

Complete PNGs are skipped on a re-run; under torchrun images are sharded over ranks; seed rules (CRFs for
``irn``) run in a process pool of ``crf_processes``. ``metrics.json`` holds ``coverage`` (labelled seed
pixels / all pixels) and, where the split has masks, the ``seeds`` scores
(:func:`wsl.evaluation.score_seeds`). An unusable image or CAM file (damaged, of another size, without a
labelled class) is skipped and counted (``failed_items``); more than ``stage.max_failed`` of the split is
one error line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wsl import dist, io
from wsl.cam import upsample_stored
from wsl.data.transforms import downscale
from wsl.errors import Failures
from wsl.evaluation import score_seeds, seed_coverage
from wsl.segmentation import SECSaliency, seed_job
from wsl.stages import common

log = logging.getLogger(__name__)
RULE = ("background", "fg_thresh", "bg_thresh", "bg_fraction", "overlap", "irn_fg", "irn_bg")


def _job(ds, i: int, folder, rule: dict, saliency: SECSaliency | None, max_side: int | None) -> tuple | str:
    """The job arguments of image ``i`` (at most ``max_side`` long: the memory guard), or a reason to skip
    it."""
    path = folder / f"{ds.ids[i]}.npz"
    try:
        image = ds.load_image(i)
        rec = io.load_cams(path, ds.num_classes)
    except (OSError, ValueError) as e:  # BadItem: the image or the CAM file
        return str(e)
    hw = tuple(int(v) for v in rec["image_size"])
    if image.shape[:2] != hw:
        return f"{path}: made for an image of {hw[0]}x{hw[1]}, the image is {image.shape[0]}x{image.shape[1]}"
    present = np.flatnonzero(ds.labels()[i] > 0)
    keep = np.isin(rec["classes"], present)
    if keep.sum() < present.size:
        return f"{path}: no map for labelled classes {sorted(set(present) - set(rec['classes']))}"
    image = downscale(image, max_side)  # seeds of a huge photo: made smaller, written at its size
    sal = saliency(image) if saliency else None
    return upsample_stored(rec["maps"][keep], image.shape[:2]), rec["classes"][keep] + 1, image, sal, rule


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split = common.split_name(cfg)
    lay = common.layout(cfg)
    cams, out = lay.cams(cfg.cam.name, split), lay.seeds(cfg.cam.name, split)
    ds = common.build_dataset(cfg, split)
    rule: dict[str, Any] = {k: st[k] for k in RULE}
    saliency = None
    if st.background == "saliency":  # SEC's background cue
        model = common.load_classifier(cfg, device)
        saliency = SECSaliency(model, st.saliency_layer, cfg.dataset.mean, cfg.dataset.std, device)
    mine, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (out / f"{i}.png").is_file(), "seeds", out
    )
    failures = Failures()

    def jobs_of(part: list[int]) -> tuple[list[int], list[tuple]]:
        kept, jobs = [], []
        for i in part:
            args = _job(ds, i, cams, rule, saliency, cfg.dataset.max_side)
            if isinstance(args, str):
                failures.add(ds.ids[i], args)
                continue
            jobs.append(args)
            kept.append(i)
        return kept, jobs

    done = common.write_label_pngs(ds, todo, out, 4 * max(1, st.crf_processes), jobs_of, seed_job,
                                   st.crf_processes, f"seeds {cfg.cam.name} {split}")  # fmt: skip
    failures = common.settle_failures(cfg, failures, common.first_n(ds, st.limit))
    done, skipped = (int(v) for v in dist.all_reduce_sum([done, skipped]))
    failed = len(failures)
    metrics: dict[str, Any] = {
        "split": split,
        "images": done + skipped,
        "done": done,
        "skipped": skipped,
        "failed": failed,
        "rule": rule,
    }
    gt = common.dataset_with_masks(cfg, split)
    if gt is not None:
        scores = score_seeds(gt, out, mine, dist.merge_all)
        metrics["seeds"] = asdict(scores)
        metrics["coverage"] = scores.coverage
    else:
        metrics["coverage"] = seed_coverage(ds, out, mine, dist.merge_all)
    dist.barrier()
    common.write_metrics(out, metrics)
    common.write_manifest(out, cfg, started, done=done, skipped=skipped, failed=failed,
                          failed_items=failures.as_dict())  # fmt: skip
    seed = metrics.get("seeds") or {}
    log.info(
        "seeds %s/%s: %d written, %d skipped, %d failed; %.1f %% of the pixels labelled%s -> %s",
        cfg.cam.name,
        split,
        done,
        skipped,
        failed,
        100 * (metrics["coverage"] or 0),
        f", mean precision {100 * (seed['mean_precision'] or 0):.1f} %, labelled-pixel mIoU "
        f"{100 * (seed['miou'] or 0):.1f} %"
        if seed
        else "",
        out,
    )
    return metrics
