"""stage=cams: maps for the labelled + top-k predicted classes of every image of a split.

Writes ``cams/<cam>/<split>/<id>.npz`` (see :func:`wsl.io.save_cams`): maps summed over scales and flips,
ReLU'd and divided by their own maximum (IRN's normalisation), so they lie in [0, 1]. Images of the same
size are batched together (no padding, which would change the maps). Complete files are skipped on a
re-run; under torchrun the images are sharded across processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from wsl import dist, io
from wsl.cam import CAMExtractor, multiscale_maps, normalize_maps
from wsl.data.transforms import to_tensor
from wsl.stages import common
from wsl.stages.camfiles import cams_dir

log = logging.getLogger(__name__)


class _Images(Dataset):
    def __init__(self, ds, mean, std) -> None:
        self.ds, self.mean, self.std = ds, mean, std

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        s = self.ds[i]
        x = None if s["image"] is None else to_tensor(s["image"], self.mean, self.std)
        return {"index": i, "id": s["id"], "x": x, "label": s["label"], "error": s["error"]}


def _collate(items: list[dict]) -> list[dict]:
    return items


def size_batches(sizes: dict[int, tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Group dataset indices by image size, then cut each group into batches (order deterministic)."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, hw in sorted(sizes.items()):
        groups[tuple(hw)].append(i)
    return [g[j : j + batch_size] for _, g in sorted(groups.items()) for j in range(0, len(g), batch_size)]


def pick_classes(label: np.ndarray, logits: torch.Tensor, top_k: int, all_classes: bool) -> list[int]:
    """The labelled classes, then the top-k predicted ones not already there (sorted, unique)."""
    c = logits.shape[-1]
    if all_classes:
        return list(range(c))
    chosen = set(np.flatnonzero(np.asarray(label) > 0).tolist())
    chosen.update(torch.topk(logits, min(top_k, c)).indices.tolist() if top_k > 0 else [])
    return sorted(chosen)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    common.set_seed(cfg.seed)
    split = common.split_name(cfg)
    out = cams_dir(cfg, split)
    model = common.load_classifier(cfg, device, train_if_missing=True)
    use_cl = st.channels_last and device.type == "cuda"
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    ds = common.build_dataset(cfg, split)
    mine, todo, skipped = common.pending(
        ds.ids,
        st.limit,
        st.overwrite,
        lambda i: io.is_complete_npz(out / f"{i}.npz"),
        "complete CAM files",
        out,
    )
    batches = size_batches({i: ds.image_size(i) for i in todo}, st.batch_size)
    loader = DataLoader(
        _Images(ds, list(cfg.dataset.mean), list(cfg.dataset.std)),
        batch_sampler=batches,
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(st.bf16 and device.type == "cuda"))
    done = failed = n_maps = 0
    t0 = time.time()
    bar = common.progress(None, f"cams {cfg.cam.name} {split}", total=len(todo))
    with CAMExtractor(
        model,
        method=cfg.cam.method,
        target_layer=cfg.cam.target_layer,
        relu=cfg.cam.relu,
        batch_size=cfg.cam.batch_size,
    ) as ext:
        for items in loader:
            bad = [it for it in items if it["x"] is None]
            for it in bad:
                log.warning("skipping %s: %s", it["id"], it["error"])
            failed += len(bad)
            items = [it for it in items if it["x"] is not None]
            bar.update(len(bad))
            if not items:
                continue
            x = torch.stack([it["x"] for it in items]).to(device, non_blocking=True)
            if use_cl:
                x = x.contiguous(memory_format=torch.channels_last)
            h, w = x.shape[-2:]
            with torch.inference_mode(), autocast:
                logits = model(x).float()
            classes = [
                pick_classes(it["label"], lg, st.top_k, st.all_classes) for it, lg in zip(items, logits)
            ]
            with autocast:
                maps = multiscale_maps(
                    ext,
                    x,
                    classes,
                    scales=tuple(st.scales),
                    flip=st.flip,
                    out_size=(math.ceil(h / st.stride), math.ceil(w / st.stride)),
                )
            for it, cls, m, lg in zip(items, classes, maps, logits):
                # eps far below any real map maximum: every non-zero map peaks at exactly 1
                m = normalize_maps(torch.relu(m.float()), mode="max", eps=1e-12).cpu().numpy()
                io.save_cams(out / f"{it['id']}.npz", np.asarray(cls), m, lg.cpu().numpy(), (h, w))
                n_maps += len(cls)
            done += len(items)
            bar.update(len(items))
    bar.close()
    elapsed = time.time() - t0
    done_all, failed_all, skipped_all, maps_all, slowest = dist.all_reduce_sum(
        [done, failed, skipped, n_maps, elapsed]
    )
    metrics = {
        "images": int(done_all),
        "maps": int(maps_all),
        "images_per_s": done_all / slowest if slowest > 0 else None,
        "maps_per_s": maps_all / slowest if slowest > 0 else None,
    }
    if getattr(ds, "has_masks", False):
        metrics.update(_cam_miou(cfg, ds, split, mine, st.miou_threshold))
    dist.barrier()
    common.write_manifest(
        out, cfg, started, done=int(done_all), skipped=int(skipped_all), failed=int(failed_all), **metrics
    )
    log.info(
        "cams %s/%s: %d images done, %d skipped, %d failed; %.1f images/s%s",
        cfg.cam.name,
        split,
        done_all,
        skipped_all,
        failed_all,
        metrics["images_per_s"] or 0.0,
        f"; CAM mIoU at bg {st.miou_threshold}: {100 * metrics['cam_miou']:.1f}"
        if "cam_miou" in metrics
        else "",
    )
    return metrics


def _cam_miou(cfg: DictConfig, ds, split: str, mine: list[int], threshold: float) -> dict:
    """CAM mIoU of this run's files at a fixed background threshold (IRN protocol), over all ranks."""
    from wsl.metrics import miou
    from wsl.stages.eval_segmentation import score_cam_masks

    conf, _, _ = score_cam_masks(ds, mine, cams_dir(cfg, split), threshold, np.array([threshold]), split)
    return {"cam_miou": miou(conf)[0], "cam_miou_threshold": threshold}
