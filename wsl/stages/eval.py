"""stage=eval: what the run produced against the dataset's annotations -> ``eval/<cam>/<split>/<task>/``.

``stage.task=localization``: every stored map against the GT boxes of its class
(:func:`wsl.evaluation.evaluate_localization`: Grad-CAM protocol top-1 / top-5 / GT-known and CorLoc,
pointing game, MaxBoxAcc V1/V2, PxAP where masks exist, COCO box AP of stage=boxes' file when present).
``segmentation``: CAM masks (IRN's protocol, fixed and tuned background threshold), and the seeds and
pseudo-labels of the run where they exist (:func:`wsl.evaluation.evaluate_segmentation`), and the trained
networks of ``stage.networks`` the run has (SEC's, stage=segtrain's: multi-scale + flip, with and without
the dense CRF; :func:`wsl.evaluation.network.evaluate_network`) -> ``eval/<cam>/<split>/network/<name>/``.
Every eval ends with ``eval/<cam>/loop.{json,md}``, the whole WSSS loop of the run in one table
(:mod:`wsl.evaluation.loop`). ``all``: every
task the dataset has annotations for. Under torchrun each rank scores its share of the images and the
accumulators are merged, so the figures equal a single process's. Writes ``metrics.json`` (fractions),
``metrics.md``, plots and ``manifest.json``. Items that cannot be scored (a damaged CAM file, a mask of the
wrong size or with values that are no class, an unusable annotation) are skipped and counted
(``failed_items``); more than ``stage.max_failed`` of the split is one error line.
"""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from wsl import dist, io
from wsl.errors import Failures, UserError
from wsl.evaluation import (
    LocalizationProtocol,
    MissingMapError,
    evaluate_localization,
    evaluate_segmentation,
    save_localization,
    save_segmentation,
    summary,
    sweep_thresholds,
)
from wsl.evaluation.loop import loop_figures, loop_markdown, save_loop
from wsl.evaluation.network import evaluate_network, save_network
from wsl.segmentation import CRFPool
from wsl.stages import common

log = logging.getLogger(__name__)


def _localization(cfg: DictConfig, ds, mine: list[int]):
    st, cam, split, lay = cfg.stage, cfg.cam.name, common.split_name(cfg), common.layout(cfg)
    protocol = LocalizationProtocol(
        st.loc_threshold, st.iou_threshold, st.box_acc_step, st.pointing_tolerance
    )
    boxes = lay.boxes_file(cam, split)
    if not boxes.is_file():
        log.info("no %s: COCO box AP left out (run stage=boxes to get it)", boxes)
        boxes = None
    try:
        res = evaluate_localization(ds, lay.cams(cam, split), boxes, protocol, mine, dist.merge_all)
    except MissingMapError as e:  # the maps were made for other labels
        raise UserError(f"{e} (stage.overwrite=true)") from None
    Failures(res.failed_items).check(len(ds), float(st.max_failed), f"eval localization {cam}/{split}")
    if dist.is_main():
        save_localization(lay.eval(cam, split, "localization"), res, f"Localization, {cam} on {split}")
    return res, res.images


def _segmentation(cfg: DictConfig, ds, mine: list[int]):
    st, cam, split, lay = cfg.stage, cfg.cam.name, common.split_name(cfg), common.layout(cfg)
    thresholds = sweep_thresholds(st.sweep_start, st.sweep_stop, st.sweep_step)
    folders = lay.cams(cam, split), lay.seeds(cam, split), lay.labels(cam, split)
    try:
        res = evaluate_segmentation(ds, *folders, cam, st.miou_threshold, thresholds, mine, dist.merge_all)
    except ValueError as e:  # no CAM file could be scored
        raise UserError(f"cannot evaluate the segmentation of {folders[0]}: {e}") from None
    bad = Failures(res.cams.failed_items)
    for part in (res.seeds, res.labels):
        bad.merge(Failures(part.failed_items if part is not None else {}))
    bad.check(len(ds), float(st.max_failed), f"eval segmentation {cam}/{split}")
    if dist.is_main():
        save_segmentation(lay.eval(cam, split, "segmentation"), res)
    return res, res.cams.images


def _networks(cfg: DictConfig, mine: list[int]) -> dict:
    """Every trained network of the run that ``stage.networks`` names, scored on the split (rank 0 writes)."""
    st, cam, split, lay = cfg.stage, cfg.cam.name, common.split_name(cfg), common.layout(cfg)
    nets = [("sec", lay.sec_network(cam), cfg.segmodel.input_size)] if "sec" in st.networks else []
    nets += [(f"segtrain-{r}", lay.segtrain_network(r, cam), None) for r in ("sec", "randomwalk")
             if "segtrain" in st.networks]  # fmt: skip
    nets = [n for n in nets if n[1].is_file()]
    if not nets:
        return {}
    device, gt, results = common.resolve_device(cfg.device), common.build_dataset(cfg, split, True), {}
    with CRFPool(st.crf_processes if st.net_crf else 0) as pool:
        for name, path, size in nets:
            started, state = time.time(), io.load_checkpoint(path)  # read once: its segmodel, its weights
            if other := common.other_segmodel(cfg, state):
                log.warning("%s holds another network than segmodel=%s: left out (score it with segmodel=%s)",
                            path, cfg.segmodel.name, other)  # fmt: skip
                continue
            model = common.load_segmodel(cfg, device, path, state)
            del state
            res = evaluate_network(gt, model, name, cfg.dataset.mean, cfg.dataset.std, device,
                                   list(st.net_scales), st.net_flip, size, st.net_crf, pool, indices=mine,
                                   reduce=dist.merge_all)  # fmt: skip
            bad = Failures(res.plain.failed_items)
            bad.check(len(gt), float(st.max_failed), f"eval {name} {cam}/{split}")
            out = lay.eval_network(cam, split, name)
            if dist.is_main():
                save_network(out, res)
            common.write_manifest(out, cfg, started, done=res.plain.images, failed=res.plain.failed)
            crf = "" if res.crf is None else f", with the dense CRF {100 * (res.miou_crf or 0):.1f} %"
            log.info("network %s on %s: mIoU %.1f %%%s -> %s", name, split, 100 * (res.miou or 0), crf, out)
            results[name] = res.to_json()
    return results


def run(cfg: DictConfig) -> dict:
    dist.init()
    st = cfg.stage
    split, cam = common.split_name(cfg), cfg.cam.name
    ds = common.build_dataset(cfg, split)
    mine = dist.shard(list(range(len(ds))))
    results = {}
    for task in ["localization", "segmentation"] if st.task == "all" else [str(st.task)]:
        started = time.time()
        if not (ds.has_boxes if task == "localization" else ds.has_masks):
            why = f"cannot evaluate {task} on {split}: dataset={cfg.dataset.name} has no annotations for it"
            if st.task != "all":
                raise UserError(why)
            log.info("skipping: %s", why)
            continue
        res, images = (_localization if task == "localization" else _segmentation)(cfg, ds, mine)
        out = common.layout(cfg).eval(cam, split, task)
        failed = res.failed_items if task == "localization" else res.cams.failed_items
        common.write_manifest(out, cfg, started, done=int(images), failed=len(failed), failed_items=failed)
        log.info("%s %s/%s: %s -> %s", task, cam, split, summary(res), out)
        results[task] = res.to_json()
        if task == "segmentation":
            results.update(_networks(cfg, mine))
    if not results:
        raise UserError(
            f"nothing to evaluate on {split}: dataset={cfg.dataset.name} has neither boxes nor masks"
        )
    lay = common.layout(cfg)  # the whole loop of the run, from whatever it has made so far
    figures = loop_figures(lay, cam, cfg.dataset.train_split, cfg.dataset.val_split)
    if dist.is_main():
        save_loop(lay.loop(cam), figures, cfg.run)
    log.info("the WSSS loop of this run -> %s\n%s", lay.loop(cam) / "loop.md", loop_markdown([figures]))
    return results
