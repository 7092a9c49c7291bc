"""stage=benchmark: CAM methods side by side on the run's classifier and data -> ``benchmark/``.

For every method of ``stage.methods`` (default: all of ``wsl.cam.METHODS``) it makes what stage=cams,
boxes and eval would, with their default options and in their folders, reusing what is on disk
(:func:`wsl.benchmark.run_chain`): the maps of the first ``stage.limit`` images, the boxes, the
localization and segmentation evaluations; then it probes faithfulness, sanity and cost on the first
images (:class:`wsl.benchmark.Probes`). The table is built from the evaluators' typed results, with
bootstrap intervals over images. Writes ``benchmark.csv`` and ``results.json`` (fractions),
``benchmark.md``, ``plots/``, ``gallery/``, ``report.html`` (percent on display) and ``manifest.json``.
A method that fails is reported, never fatal.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig

from wsl import benchmark as bm
from wsl.benchmark.rows import OK
from wsl.errors import UserError
from wsl.evaluation import LocalizationProtocol, sweep_thresholds
from wsl.stages import common

log = logging.getLogger(__name__)


def _chain(cfg: DictConfig, m: str) -> tuple[bm.ChainSettings, dict[str, DictConfig]]:
    """The chain's settings for method ``m`` and the configuration each of its folders' manifest records."""
    st = cfg.stage

    def sub(stage: str, **kw) -> DictConfig:
        return common.compose_cam(common.compose_stage(cfg, stage, split=st.split, **kw), m)

    configs = {
        "cams": sub("cams", limit=st.limit, overwrite=st.overwrite),
        "boxes": sub("boxes"),
        "eval/localization": sub("eval", task="localization"),
        "eval/segmentation": sub("eval", task="segmentation"),
    }
    b, ev = configs["boxes"].stage, configs["eval/localization"].stage
    settings = bm.ChainSettings(
        cams=common.cam_settings(configs["cams"]),
        mean=list(cfg.dataset.mean),
        std=list(cfg.dataset.std),
        limit=st.limit,
        overwrite=bool(st.overwrite),
        box_threshold=None if b.threshold_method == "otsu" else float(b.threshold),
        box_method=str(b.threshold_method),
        box_mode=str(b.box_mode),
        protocol=LocalizationProtocol(
            float(ev.loc_threshold),
            float(ev.iou_threshold),
            float(ev.box_acc_step),
            float(ev.pointing_tolerance),
        ),
        miou_threshold=float(ev.miou_threshold),
        thresholds=sweep_thresholds(ev.sweep_start, ev.sweep_stop, ev.sweep_step),
        num_workers=int(cfg.num_workers),
        seed=int(cfg.seed),
    )
    return settings, configs


def _method(cfg: DictConfig, m: str, ds, model: torch.nn.Module, device, probes: bm.Probes) -> dict:
    """The row of method ``m``: its maps, boxes and evaluations (made or reused), then the probes."""
    split, lay = common.split_name(cfg), common.layout(cfg)
    settings, configs = _chain(cfg, m)

    def manifest(step: str, folder, started: float, **counts) -> None:
        common.write_manifest(folder, configs[step], started, **counts)

    res = bm.run_chain(ds, lay, m, split, model, device, settings, manifest)
    row = bm.quality_row(res.localization, res.segmentation, res.intervals)
    cams = lay.cams(m, split) if res.status["cams"] in OK else None
    status = dict(res.status)
    row |= probes.measure(settings.cams.method, cams, status)
    return row | {"status": status}


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    common.set_seed(cfg.seed)
    methods = bm.resolve_methods(st.methods)
    split, lay = common.split_name(cfg), common.layout(cfg)
    ds = common.build_dataset(cfg, split)
    n = common.first_n(ds, st.limit)
    if n == 0:
        raise UserError(f"split {split!r} has no image to benchmark")
    picks = bm.pick_images(ds, st.gallery.ids, min(int(st.gallery.images), n), "stage.gallery.ids")
    model = common.load_classifier(cfg, device)
    mode = str(st.sanity.mode)  # layers (Adebayo et al.'s whole layers) or conv_linear
    blocks = (
        [str(b) for b in st.sanity.blocks]
        if st.sanity.blocks
        else bm.default_blocks(model, st.sanity.depth, mode)
    )

    def items(k: int) -> list[bm.Item]:
        return bm.load_items(ds, list(range(min(int(k), n))), cfg.dataset.mean, cfg.dataset.std, device)

    probes = bm.Probes(
        model,
        device,
        common.cam_layer(cfg),
        blocks,
        items(st.faithfulness.images),
        items(st.sanity.images),
        items(st.cost_images + 1),
        int(st.faithfulness.steps),
        float(st.sanity.threshold),
        int(cfg.seed),
        sanity_mode=mode,
    )
    rows: dict[str, dict] = {}
    for k, m in enumerate(methods):
        log.info("benchmark: %s (%d of %d)", m, k + 1, len(methods))
        rows[m] = _method(cfg, m, ds, model, device, probes)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out = lay.benchmark()
    meta = {
        "title": f"{cfg.dataset.name} / {cfg.model.name} / {split}",
        "subtitle": f"{n} images, target layer {probes.layer}, {device.type}, run {cfg.run}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "notes": probes.notes(),
        "identical_maps": probes.identical_maps(),
    }
    report = bm.write_benchmark(out, rows, meta, blocks, bm.gallery(ds, lay, methods, split, picks, out))
    tab, failed = bm.table(rows), bm.failed_methods(rows)
    common.write_manifest(
        out,
        cfg,
        started,
        done=len(methods) - len(failed),
        failed=len(failed),
        methods=methods,
        table=tab,
        status={m: r["status"] for m, r in rows.items()},
        sanity_blocks=blocks,
        sanity_mode=mode,
        images=n,
        peak_memory=bm.PEAK_MEMORY_NOTE,
        notes=meta["notes"],
    )
    for line in bm.summary(rows):
        log.info("benchmark: %s", line)
    log.info("benchmark of %d methods on %s -> %s", len(methods), split, report)
    return {"methods": tab, "report": str(report)}
