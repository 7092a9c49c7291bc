"""stage=benchmark: CAM methods side by side on the run's classifier and data -> ``benchmark/``.

For every method of ``stage.methods`` (default: all of ``wsl.cam.METHODS``) it chains stage=cams, boxes and
eval in-process (reusing what is on disk, see :mod:`wsl.stages.benchmark_chain`), then gathers:
localization and segmentation scores from the evaluators' ``metrics.json``; MaxBoxAccV2, PxAP and the
BoxAcc curve from one pass over the stored maps where the evaluators do not give them; faithfulness,
sanity and cost measured on the first images of the split (:mod:`wsl.stages.benchmark_probes`).
Writes ``benchmark.csv``, ``benchmark.md``, ``plots/*.png``, ``gallery/*.png``, ``report.html`` (static,
opens from disk) and ``manifest.json``. A method that fails is reported (n/a, and why), never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig

from wsl import io
from wsl.cam import METHODS
from wsl.stages import UserError, common
from wsl.stages import benchmark_probes as probes
from wsl.stages.benchmark_chain import CONF_DIR, ensure_classifier, run_chain, stage_config
from wsl.stages.benchmark_overlays import gallery
from wsl.stages.benchmark_report import markdown, report_html, summary, write_csv, write_plots
from wsl.stages.benchmark_scores import COLUMNS, eval_scores, map_scores

log = logging.getLogger(__name__)


def resolve_methods(methods: Any) -> list[str]:
    """``stage.methods`` as a list (None: every method), each checked against METHODS and conf/cam."""
    names = list(METHODS) if methods is None else [str(m) for m in methods]
    bad = [m for m in names if m not in METHODS or not (CONF_DIR / "cam" / f"{m}.yaml").is_file()]
    if bad or not names:
        raise UserError(f"stage.methods: unknown {bad or 'empty list'}; choose from {', '.join(METHODS)}")
    return names


def _probe(status: dict[str, str], name: str, fn: Callable[[], dict]) -> dict:
    """Run one measurement; a failure is logged and recorded in ``status``, never raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a method a probe cannot handle is reported, not fatal
        log.warning("benchmark: %s failed: %s: %s", name, type(e).__name__, e)
        status[name] = f"failed: {type(e).__name__}: {e}"
        return {}


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    common.set_seed(cfg.seed)
    methods = resolve_methods(st.methods)
    split = common.split_name(cfg)
    ensure_classifier(cfg)
    ds = common.build_dataset(cfg, split)
    indices = list(range(len(ds) if st.limit is None else min(int(st.limit), len(ds))))
    if not indices:
        raise UserError(f"split {split!r} has no image to benchmark")
    tasks = [t for t, ok in (("localization", ds.has_boxes), ("segmentation", ds.has_masks)) if ok]
    model = common.load_classifier(cfg, device)
    layer = str(cfg.cam.target_layer)
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    faith = probes.load_items(ds, indices[: st.faithfulness.images], mean, std, device)
    sane = probes.load_items(ds, indices[: st.sanity.images], mean, std, device)
    costly = probes.load_items(ds, indices[: st.cost_images + 1], mean, std, device)
    blocks = list(st.sanity.blocks) if st.sanity.blocks else probes.default_blocks(model, st.sanity.depth)
    step = float(stage_config(cfg, "eval").stage.box_acc_step)
    run = common.run_dir(cfg)
    rows: dict[str, dict[str, Any]] = {}
    for m in methods:
        log.info("benchmark: %s (%d of %d)", m, len(rows) + 1, len(methods))
        status = run_chain(cfg, m, split, [ds.ids[i] for i in indices], tasks)
        row: dict[str, Any] = {c.key: None for c in COLUMNS}
        if status["cams"] in ("ran", "reused"):
            folder = run / "cams" / m / split
            row.update(eval_scores(run, m, split))
            own = _probe(status, "map scores", lambda f=folder: map_scores(ds, f, indices, step))
            row.update({k: v for k, v in own.items() if row.get(k) is None})
            row.update(
                _probe(
                    status,
                    "faithfulness",
                    lambda f=folder: probes.faithfulness(model, faith, f, st.faithfulness.steps),
                )
            )
        row.update(
            _probe(
                status,
                "sanity",
                lambda m=m: probes.sanity(model, m, layer, sane, blocks, st.sanity.threshold, cfg.seed),
            )
        )
        row.update(_probe(status, "cost", lambda m=m: probes.cost(model, m, layer, costly, device)))
        row["status"] = status
        rows[m] = row
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out = run / "benchmark"
    gallery_ids = st.gallery.ids
    if gallery_ids:
        missing = [i for i in gallery_ids if i not in ds.ids]
        if missing:
            raise UserError(f"stage.gallery.ids: {missing} are not images of split {split!r}")
    picks = [ds.ids.index(i) for i in gallery_ids] if gallery_ids else indices[: st.gallery.images]
    shown = gallery(ds, run, methods, split, picks, out)
    meta = {
        "title": f"{cfg.dataset.name} / {cfg.model.name} / {split}",
        "subtitle": f"{len(indices)} images, target layer {layer}, {device.type}, run {cfg.run}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "notes": f"Faithfulness on the first {len(faith)} images ({st.faithfulness.steps} steps), sanity on "
        f"{len(sane)} images randomising {', '.join(blocks)} (flag: Spearman > {st.sanity.threshold}), cost "
        f"on {max(len(costly) - 1, 0)} images after one warm-up image.",
    }
    write_csv(out / "benchmark.csv", rows)
    io.write_text(out / "benchmark.md", markdown(rows, meta))
    plots = write_plots(out, rows, blocks)
    io.write_text(out / "report.html", report_html(rows, meta, plots, shown))
    table = {
        m: {c.key: r[c.key] for c in COLUMNS} | {"flagged": bool(r.get("flagged"))} for m, r in rows.items()
    }
    failed = sorted(
        m for m, r in rows.items() if not all(v in ("ran", "reused") for v in r["status"].values())
    )
    common.write_manifest(
        out,
        cfg,
        started,
        done=len(methods) - len(failed),
        failed=len(failed),
        methods=methods,
        table=table,
        status={m: r["status"] for m, r in rows.items()},
        sanity_blocks=blocks,
        images=len(indices),
        peak_memory=probes.PEAK_MEMORY_NOTE,
        notes=meta["notes"],
    )
    for line in summary(rows):
        log.info("benchmark: %s", line)
    log.info("benchmark of %d methods on %s -> %s", len(methods), split, out / "report.html")
    return {"methods": table, "report": str(out / "report.html")}
