"""What the stages share: config -> device, dataset, models, run layout, sub-configurations, manifests.

This and the stage modules are the only code that reads the configuration; everything else is library.
"""

from __future__ import annotations

import copy
import enum
import logging
import random
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from wsl import CONF_DIR, dist, io
from wsl.cam import CamSettings
from wsl.cam.methods import METHOD_OPTIONS
from wsl.config_schema import register_resolvers, register_schemas
from wsl.data.transforms import upsample_labels
from wsl.errors import Failures, UserError
from wsl.evaluation import score_labels
from wsl.layout import RunLayout
from wsl.manifest import manifest
from wsl.models import fit_state_dict
from wsl.progress import track
from wsl.segmentation import CRFPool

log = logging.getLogger(__name__)


def layout(cfg: DictConfig) -> RunLayout:
    return RunLayout(cfg.paths.run_dir)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} asked for, but no CUDA device is available; use device=auto or cpu")
    return dev


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a user-fixable failure inside (a missing file, a bad
    value, weights that cannot be fetched offline) is one :class:`UserError` line naming ``what``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError | FileNotFoundError | ValueError):
            raise UserError(f"{what}: {cause}") from None
        raise
    except (UserError, FileNotFoundError) as e:
        raise UserError(f"{what}: {e}") from None


# ------------------------------------------------------------------------------------------- datasets


def build_dataset(cfg: DictConfig, split: str, with_masks: bool = False, with_boxes: bool = False):
    """The dataset of ``split`` as configured, generated first if it is the toy data (rank 0 writes it);
    images smaller than ``dataset.min_side`` are bad items."""
    prep = cfg.dataset.get("prepare")
    if prep is not None:
        if dist.is_main():
            build(prep, f"dataset={cfg.dataset.name}")
        dist.barrier()
        if not dist.is_main():
            build(prep, f"dataset={cfg.dataset.name}")  # already there: only checks the marker
    try:
        return build(
            cfg.dataset.loader,
            f"dataset={cfg.dataset.name}",
            split=split,
            with_masks=with_masks,
            with_boxes=with_boxes,
            min_side=int(cfg.dataset.min_side),
        )
    except UserError as e:
        raise UserError(str(e).replace("\n", " ")) from None


def dataset_with_masks(cfg: DictConfig, split: str):
    """The split with ground-truth masks for scoring, or None (logged) when some or all are missing."""
    try:
        ds = build_dataset(cfg, split, with_masks=True)
    except UserError as e:
        log.info("no ground-truth masks for every image of %s: not scored (%s)", split, str(e)[:200])
        return None
    return ds if ds.has_masks else None


def split_name(cfg: DictConfig) -> str:
    """The split a stage works on: ``stage.split``, where ``train``/``val`` name the dataset's own."""
    split = cfg.stage.get("split", "val")
    return {"train": cfg.dataset.train_split, "val": cfg.dataset.val_split}.get(split, split)


def first_n(ds, limit: int | None) -> int:
    """How many images of ``ds`` (or of a list of ids) a stage with ``stage.limit=limit`` works on."""
    return len(ds) if limit is None else min(int(limit), len(ds))


def settle_failures(cfg: DictConfig, failures: Failures, total: int) -> Failures:
    """The bad items of every rank; one :class:`UserError` line (README "Bad input") when they are more
    than ``stage.max_failed`` of the ``total`` items the stage worked on. Call it before the manifest, so
    that a split with too many bad items is never marked complete."""
    merged = dist.merge_all(failures)
    merged.check(total, float(cfg.stage.max_failed), f"{cfg.stage.name} {cfg.cam.name}/{split_name(cfg)}")
    return merged


def pending(ids: list[str], limit: int | None, overwrite: bool, is_done, what: str, out: Path):
    """This rank's share of the first ``limit`` images and, among them, those still to do.

    ``is_done(image_id)`` says whether an image's output is complete (a re-run skips it unless
    ``overwrite``). Returns ``(mine, todo, skipped)``.
    """
    mine = dist.shard(list(range(first_n(ids, limit))))
    todo = [i for i in mine if overwrite or not is_done(ids[i])]
    skipped = len(mine) - len(todo)
    if skipped:
        log.info("%d of %d images already have %s in %s: skipped", skipped, len(mine), what, out)
    return mine, todo, skipped


def write_label_pngs(ds, todo: list[int], out: Path, chunk: int, jobs_of: Callable, fn: Callable,
                     processes: int, desc: str) -> int:  # fmt: skip
    """The label PNGs ``out/<id>.png`` of the images ``todo`` (seeds, confident regions, pseudo-labels),
    ``chunk`` images at a time: ``jobs_of(part)`` returns the images of ``part`` it could prepare and their
    job tuples (recording the others as failures); ``fn(*job)`` makes each image's label grid, in a
    :class:`CRFPool` of ``processes`` workers; the grid is written at the image's size. Returns how many
    PNGs were written."""
    done = 0
    with CRFPool(processes if todo else 0) as pool, track(None, desc, total=len(todo)) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            kept, jobs = jobs_of(part)
            for i, grid in zip(kept, pool.imap(fn, jobs)):
                io.write_label_png(out / f"{ds.ids[i]}.png", upsample_labels(grid, ds.image_size(i)))
                done += 1
            bar.update(len(part))
    return done


# --------------------------------------------------------------------------------------------- models


def classifier_checkpoint(cfg: DictConfig) -> Path:
    """``model.checkpoint`` when given, else the run's ``train/best.pt``."""
    ckpt = cfg.model.get("checkpoint")
    return Path(ckpt) if ckpt else layout(cfg).classifier()


def load_classifier(cfg: DictConfig, device: torch.device) -> torch.nn.Module:
    """The run's trained classifier (``model.checkpoint`` or ``train/best.pt``), eval mode, on ``device``."""
    path = classifier_checkpoint(cfg)
    if not path.is_file():
        raise UserError(f"no classifier checkpoint at {path}: run stage=train first or set model.checkpoint")
    model = build(cfg.model.build, f"model={cfg.model.name}")
    fit_state_dict(model, io.load_state_dict(path), str(path), f"model={cfg.model.name}")
    return model.to(device).eval()


def build_segmodel(cfg: DictConfig, from_checkpoint: bool = False) -> torch.nn.Module:
    """``segmodel.build`` with ``num_classes = dataset.num_classes + 1`` (class 0 is the background).

    With ``from_checkpoint`` ImageNet weights are not fetched (the checkpoint replaces them anyway).
    """
    seg = cfg.segmodel
    if seg.get("pretrained") and "pretrained" not in seg.build:
        raise UserError(f"segmodel={seg.name} has no pretrained weights; set segmodel.pretrained=false")
    kwargs: dict[str, Any] = {"num_classes": int(cfg.dataset.num_classes) + 1}
    if from_checkpoint and "pretrained" in seg.build:
        kwargs["pretrained"] = False
    return build(seg.build, f"segmodel={seg.name}", **kwargs)


def segmodel_meta(cfg: DictConfig, grid: tuple[int, int]) -> dict[str, Any]:
    """What a SEC checkpoint records about its network, checked when it is loaded."""
    return {
        "segmodel": cfg.segmodel.name,
        "num_classes": int(cfg.dataset.num_classes) + 1,
        "input_size": int(cfg.segmodel.input_size),
        "grid": list(grid),
        "cam": cfg.cam.name,
    }


def other_segmodel(cfg: DictConfig, checkpoint: dict) -> str | None:
    """The ``segmodel`` a network checkpoint was trained as, when it is not ``cfg``'s (None: it fits, or
    the checkpoint does not say)."""
    name = checkpoint.get("segmodel")
    return name if name not in (None, cfg.segmodel.name) else None


def load_segmodel(cfg: DictConfig, device: torch.device, path: Path | None = None,
                  state: dict | None = None) -> torch.nn.Module:  # fmt: skip
    """The trained SEC network (``sec/<cam>/final.pt`` unless ``path``), in eval mode on ``device``;
    ``state``: the checkpoint of ``path`` when the caller has already read it (it is read once)."""
    path = Path(path) if path else layout(cfg).sec_network(cfg.cam.name)
    if state is None:
        if not path.is_file():
            raise UserError(f"no SEC network at {path}: run `python -m wsl.run stage=sec` first")
        state = io.load_checkpoint(path)
    if other := other_segmodel(cfg, state):
        raise UserError(f"{path} holds segmodel={other}, not segmodel={cfg.segmodel.name}")
    model = build_segmodel(cfg, from_checkpoint=True)
    fit_state_dict(model, io.weights_of(state), str(path), f"segmodel={cfg.segmodel.name}")
    return model.to(device).eval()


def _plain(value: Any) -> Any:
    """A config value as plain Python (lists and enums included)."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return str(value) if isinstance(value, enum.Enum) else value


def cam_layer(cfg: DictConfig) -> str | list[str]:
    """``cam.target_layer``: one module name, or a list of names (their maps combined)."""
    layer = cfg.cam.target_layer
    return str(layer) if isinstance(layer, str) else [str(v) for v in layer]


def cam_settings(cfg: DictConfig) -> CamSettings:
    """stage=cams's options (``cfg.stage`` must be a cams stage node) and the ``cam`` group."""
    st, cam = cfg.stage, cfg.cam
    layer = cam_layer(cfg)
    return CamSettings(
        method=str(cam.method),
        target_layer=layer if isinstance(layer, str) else tuple(layer),
        relu=bool(cam.relu),
        target=str(cam.get("target", "logit")),
        max_grad_mb=None if st.get("max_grad_mb") is None else float(st.max_grad_mb),
        aug_smooth=bool(cam.get("aug_smooth", False)),
        options={k: _plain(cam[k]) for k in METHOD_OPTIONS if k in cam},
        inner_batch=int(cam.batch_size),
        scales=tuple(float(s) for s in st.scales),
        flip=bool(st.flip),
        stride=int(st.stride),
        batch_size=int(st.batch_size),
        top_k=int(st.top_k),
        all_classes=bool(st.all_classes),
        bf16=bool(st.bf16),
        channels_last=bool(st.channels_last),
    )


# ----------------------------------------------------------------------------------- sub-configurations


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's compose API on conf/, inside the running app or standalone (tests, notebooks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    register_schemas()
    if HydraConfig.initialized():  # keep the user's +experiment=..., whose stage settings live in its folder
        experiment = HydraConfig.get().runtime.choices.get("experiment")
        overrides = [*overrides, *([f"+experiment={experiment}"] if experiment else [])]
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _with(cfg: DictConfig, **nodes: Any) -> DictConfig:
    """A copy of ``cfg`` with top-level ``nodes`` replaced; struct and read-only flags kept."""
    sub = copy.deepcopy(cfg)
    readonly = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(sub, False)
    with open_dict(sub):
        for key, node in nodes.items():
            sub[key] = node
    OmegaConf.set_struct(sub, True)
    OmegaConf.set_readonly(sub, readonly)
    return sub


def compose_stage(cfg: DictConfig, stage: str, **overrides: Any) -> DictConfig:
    """``cfg`` running ``stage`` with that stage's defaults (from Hydra's compose API) and ``overrides``;
    every other group (dataset, model, paths, cam, ...) stays as in ``cfg``. An unknown key raises."""
    node = _compose([f"stage={stage}"]).stage
    for key, value in overrides.items():
        if key not in node:
            raise KeyError(f"stage={stage} has no option {key!r}")
        node[key] = value
    return _with(cfg, stage=node)


def compose_cam(cfg: DictConfig, method: str) -> DictConfig:
    """``cfg`` with the ``cam`` group set to ``method``, at ``cfg``'s target layer."""
    node = _compose([f"cam={method}"]).cam
    node.target_layer = cfg.cam.target_layer
    if "target" in cfg.cam:
        node.target = cfg.cam.target
    return _with(cfg, cam=node)


# ------------------------------------------------------------------------------------------ manifests


def write_manifest(folder: Path, cfg: DictConfig, started: float, **counts_and_extra: Any) -> None:
    """``manifest.json`` of a leaf folder (rank 0 only); written last, it marks the folder complete."""
    if dist.is_main():
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        record = manifest(cfg.stage.name, config, started, dist.world_size(), **counts_and_extra)
        io.write_json(RunLayout.manifest(folder), record)


def write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    if dist.is_main():
        io.write_json(RunLayout.metrics(folder), metrics)


def up_to_date(folder: Path, cfg: DictConfig, *inputs: Path) -> bool:
    """True when ``folder``'s manifest exists, is newer than every input file and records the same stage
    options and dataset as ``cfg`` (a re-run then has nothing to do unless ``stage.overwrite``)."""
    path = RunLayout.manifest(folder)
    if not path.is_file() or any(p.is_file() and p.stat().st_mtime > path.stat().st_mtime for p in inputs):
        return False
    try:
        old = io.read_json(path)["config"]
    except (OSError, ValueError, KeyError):
        return False
    now = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return old.get("stage") == now["stage"] and old.get("dataset") == now["dataset"]


def produced(cfg: DictConfig, stage: str) -> Path:
    """The file whose presence says ``stage`` has run for ``cfg``'s classifier, CAM method and split."""
    lay, cam, split = layout(cfg), cfg.cam.name, split_name(cfg)
    return {
        "train": lambda: classifier_checkpoint(cfg),
        "cams": lambda: RunLayout.manifest(lay.cams(cam, split)),
        "boxes": lambda: lay.boxes_file(cam, split),
        "seeds": lambda: RunLayout.manifest(lay.seeds(cam, split)),
        "sec": lambda: Path(cfg.stage.get("checkpoint") or lay.sec_network(cam)),
        "affinity": lambda: Path(cfg.stage.get("checkpoint") or lay.affinity_network(cam)),
    }[stage]()


def command(cfg: DictConfig, stage: str) -> str:
    """The command line that makes ``produced(cfg, stage)``."""
    parts = ["python -m wsl.run", f"stage={stage}"]
    if stage != "train":
        parts.append(f"cam={cfg.cam.name}")
    if stage in ("cams", "boxes", "seeds", "sec", "affinity"):
        parts.append(f"stage.split={cfg.stage.get('split', 'val')}")
    return " ".join(parts)


def finish_pseudo_labels(cfg: DictConfig, ds, out: Path, list_file: Path, mine: list[int], done: int,
                         skipped: int, failures: Failures, started: float) -> dict:  # fmt: skip
    """The end of a pseudo-label stage (labels, randomwalk): the list file
    ``<list_image_prefix><id><list_image_suffix> <list_label_prefix><id>.png`` of every image with a PNG,
    the scores where the split has masks, ``metrics.json`` and the manifest; the metrics."""
    st, split = cfg.stage, split_name(cfg)
    done, skipped = (int(v) for v in dist.all_reduce_sum([done, skipped]))
    dist.barrier()
    lines = [
        f"{st.list_image_prefix}{ds.ids[i]}{st.list_image_suffix} {st.list_label_prefix}{ds.ids[i]}.png\n"
        for i in range(first_n(ds, st.limit))
        if (out / f"{ds.ids[i]}.png").is_file()
    ]
    if dist.is_main():
        io.write_text(list_file, "".join(lines))
    metrics = {"split": split, "images": done + skipped, "done": done, "skipped": skipped,
               "failed": len(failures), "listed": len(lines), "list_file": str(list_file)}  # fmt: skip
    gt = dataset_with_masks(cfg, split)
    if gt is not None:
        scores = score_labels(gt, out, mine, dist.merge_all)
        metrics["labels"], metrics["miou"] = asdict(scores), scores.miou
    write_metrics(out, metrics)
    write_manifest(out, cfg, started, done=done, skipped=skipped, failed=len(failures),
                   failed_items=failures.as_dict())  # fmt: skip
    miou = f"; mIoU {100 * metrics['miou']:.1f} %" if metrics.get("miou") is not None else ""
    log.info("%s %s/%s: %d written, %d skipped, %d failed%s -> %s (list %s)", st.name, cfg.cam.name, split,
             done, skipped, len(failures), miou, out, list_file)  # fmt: skip
    return metrics


def resume(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, overwrite: bool,
           what: str) -> tuple[int, list, dict]:  # fmt: skip
    """``(iteration, history, state)`` of ``out/last.pt`` loaded into ``model`` and ``opt`` (an
    iteration-based training: sec, affinity, segtrain); ``(0, [], {})`` when there is none or on
    ``overwrite``."""
    if not (out / "last.pt").is_file() or overwrite:
        return 0, [], {}
    state = io.load_checkpoint(out / "last.pt")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    start = int(state["iteration"])
    log.info("resuming %s from %s at iteration %d", what, out / "last.pt", start)
    return start, list(state["history"]), state
