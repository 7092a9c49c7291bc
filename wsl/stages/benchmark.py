"""stage=benchmark: CAM methods side by side on the run's classifier and data -> ``benchmark/``.

For every method of ``stage.methods`` (default: all of ``wsl.cam.METHODS``) it chains stage=cams, boxes and
eval in-process (reusing what is on disk, see :mod:`wsl.stages.benchmark_chain`), then gathers:
localization and segmentation scores from the evaluators' ``metrics.json``; MaxBoxAccV2, PxAP and the
BoxAcc curve from one pass over the stored maps where the evaluators do not give them; faithfulness,
sanity and cost measured on the first images of the split (:mod:`wsl.stages.benchmark_probes`).
Writes ``benchmark.csv``, ``benchmark.md``, ``plots/*.png``, ``gallery/*.png``, ``report.html`` (static,
opens from disk), ``results.json`` (every value and curve behind them) and ``manifest.json``. A method
that fails is reported (n/a, and why), never fatal.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from omegaconf import DictConfig

from wsl import io
from wsl.cam import METHODS
from wsl.stages import UserError, common
from wsl.stages import benchmark_probes as probes
from wsl.stages.benchmark_measure import Shared, measure
from wsl.stages.benchmark_overlays import gallery
from wsl.stages.benchmark_report import report_html, write_plots
from wsl.stages.benchmark_scores import COLUMNS
from wsl.stages.benchmark_tables import markdown, summary, write_csv
from wsl.stages.common import CONF_DIR, ensure_classifier, stage_config

log = logging.getLogger(__name__)


def resolve_methods(methods: Any) -> list[str]:
    """``stage.methods`` as a list (None: every method), each checked against METHODS and conf/cam."""
    names = list(METHODS) if methods is None else [str(m) for m in methods]
    bad = [m for m in names if m not in METHODS or not (CONF_DIR / "cam" / f"{m}.yaml").is_file()]
    if bad or not names:
        raise UserError(f"stage.methods: unknown {bad or 'empty list'}; choose from {', '.join(METHODS)}")
    return names


def _gallery_picks(st: DictConfig, ds, indices: list[int]) -> list[int]:
    """Dataset indices of the gallery: ``stage.gallery.ids`` (checked) or the first images."""
    if not st.gallery.ids:
        return indices[: st.gallery.images]
    ids = [str(i) for i in st.gallery.ids]
    missing = [i for i in ids if i not in ds.ids]
    if missing:
        raise UserError(f"stage.gallery.ids: {missing} are not images of split {ds.split!r}")
    return [ds.ids.index(i) for i in ids]


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
    picks = _gallery_picks(st, ds, indices)
    model = common.load_classifier(cfg, device)
    blocks = list(st.sanity.blocks) if st.sanity.blocks else probes.default_blocks(model, st.sanity.depth)
    tasks = [t for t, ok in (("localization", ds.has_boxes), ("segmentation", ds.has_masks)) if ok]
    step = float(stage_config(cfg, "eval").stage.box_acc_step)
    sh = Shared(
        common.run_dir(cfg), split, ds, indices, model, device, str(cfg.cam.target_layer), tasks, blocks, step
    )
    mean, std = list(cfg.dataset.mean), list(cfg.dataset.std)
    for name, n in (
        ("faith", st.faithfulness.images),
        ("sane", st.sanity.images),
        ("costly", st.cost_images + 1),
    ):
        setattr(sh, name, probes.load_items(ds, indices[:n], mean, std, device))
    rows: dict[str, dict[str, Any]] = {}
    for k, m in enumerate(methods):
        log.info("benchmark: %s (%d of %d)", m, k + 1, len(methods))
        rows[m] = measure(cfg, m, sh)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out = sh.run / "benchmark"
    meta = {
        "title": f"{cfg.dataset.name} / {cfg.model.name} / {split}",
        "subtitle": f"{len(indices)} images, target layer {sh.layer}, {device.type}, run {cfg.run}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "notes": f"Faithfulness on the first {len(sh.faith)} images ({st.faithfulness.steps} steps), sanity "
        f"on {len(sh.sane)} images randomising {', '.join(blocks)} (flag: Spearman > "
        f"{st.sanity.threshold}), cost on {max(len(sh.costly) - 1, 0)} images after one warm-up image.",
    }
    write_csv(out / "benchmark.csv", rows)
    io.write_json(out / "results.json", {"meta": meta, "blocks": blocks, "rows": rows})
    io.write_text(out / "benchmark.md", markdown(rows, meta))
    shown = gallery(ds, sh.run, methods, split, picks, out)
    io.write_text(out / "report.html", report_html(rows, meta, write_plots(out, rows, blocks), shown))
    table = {
        m: {c.key: r[c.key] for c in COLUMNS} | {"flagged": bool(r.get("flagged"))} for m, r in rows.items()
    }
    failed = [m for m, r in rows.items() if not all(v in ("ran", "reused") for v in r["status"].values())]
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
