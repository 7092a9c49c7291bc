"""Maps for every image of a dataset, stored one ``.npz`` per image (what stage=cams runs).

Maps are summed over scales and flips (IRN/PSA, :func:`wsl.cam.multiscale_maps`), ReLU'd and divided by
their own maximum, so they lie in [0, 1], and stored at ``ceil(H / stride) x ceil(W / stride)`` by
:func:`wsl.io.save_cams`. Images of the same size are batched together (no padding, which would change the
maps). A bad item (unreadable, too small, of another size than its annotation says) is skipped, logged once
and recorded in the returned :class:`~wsl.errors.Failures`. Images longer than ``max_side`` are downscaled
for the model (the memory guard): their maps are stored at ``ceil(h' / stride)`` of the downscaled image,
with ``image_size`` the ORIGINAL (H, W), so every reader upsamples them to the original image.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from wsl import io
from wsl.cam.extractor import CAMExtractor
from wsl.cam.postprocess import normalize_maps
from wsl.cam.tta import multiscale_maps
from wsl.data.transforms import downscale, fit_side, to_tensor
from wsl.errors import Failures
from wsl.progress import track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CamSettings:
    """How the maps of a dataset are made (stage=cams's options, conf/stage/cams.yaml)."""

    method: str = "gradcam"
    target_layer: str | tuple[str, ...] = "layer4"  # several: their maps combined (wsl.cam.layers)
    relu: bool = True
    target: str = "logit"  # what a class's score is (wsl.cam.targets)
    max_grad_mb: float | None = None  # class gradients held at once (MiB); None: from free memory
    aug_smooth: bool = False
    options: dict = field(default_factory=dict)  # method options (wsl.cam.methods.METHOD_OPTIONS)
    inner_batch: int = 64  # masked / ablated inputs per forward pass (Score-CAM, Ablation-CAM)
    scales: tuple[float, ...] = (1.0,)
    flip: bool = True
    stride: int = 4
    batch_size: int = 16
    top_k: int = 5
    all_classes: bool = False
    bf16: bool = False
    channels_last: bool = False


@dataclass(frozen=True)
class CamCounts:
    """What one call of :func:`write_dataset_cams` did (this process only); ``failures`` the bad items."""

    done: int
    failures: Failures
    maps: int
    seconds: float

    @property
    def failed(self) -> int:
        return len(self.failures)


class _Images(Dataset):
    """Normalised (3, h, w) tensors of the images, downscaled to ``max_side``, with their original size."""

    def __init__(self, ds, mean: Sequence[float], std: Sequence[float], max_side: int | None) -> None:
        self.ds, self.mean, self.std, self.max_side = ds, list(mean), list(std), max_side

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        s = self.ds[i]
        x = size = None
        if s["image"] is not None:
            size = s["image"].shape[:2]
            x = to_tensor(downscale(s["image"], self.max_side), self.mean, self.std)
        return {"index": i, "id": s["id"], "x": x, "size": size, "label": s["label"], "error": s["error"]}


def _as_list(items: list[dict]) -> list[dict]:
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


def write_dataset_cams(
    model: torch.nn.Module,
    ds,
    indices: Sequence[int],
    out: Path,
    settings: CamSettings,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    num_workers: int = 0,
    desc: str = "cams",
    max_side: int | None = None,
) -> CamCounts:
    """Write ``out/<id>.npz`` for the images ``indices`` of ``ds`` with ``model`` (eval mode, on ``device``).

    Every file is written atomically; the caller decides which indices still need one (resume). Images
    whose longer side exceeds ``max_side`` are downscaled for the model (None: never).
    """
    s = settings
    use_cl = s.channels_last and device.type == "cuda"
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    failures = Failures()
    sizes = {}
    for i in indices:
        try:  # the size the model sees; a header that cannot be read is a bad item
            sizes[i] = fit_side(ds.image_size(i), max_side)
        except OSError as e:
            failures.add(ds.ids[i], e)
    batches = size_batches(sizes, s.batch_size)
    loader = DataLoader(
        _Images(ds, mean, std, max_side),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=_as_list,
        pin_memory=device.type == "cuda",
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(s.bf16 and device.type == "cuda"))
    done = n_maps = 0
    t0 = time.time()
    bar = track(None, desc, total=len(indices))
    bar.update(len(failures))
    with (
        bar,
        CAMExtractor(
            model,
            method=s.method,
            target_layer=list(s.target_layer) if isinstance(s.target_layer, tuple) else s.target_layer,
            relu=s.relu,
            batch_size=s.inner_batch,
            options=s.options,
            aug_smooth=s.aug_smooth,
            target=s.target,
            max_grad_mb=s.max_grad_mb,
        ) as ext,
    ):
        for items in loader:
            bad = [it for it in items if it["x"] is None]
            failures.update((it["id"], it["error"]) for it in bad)
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
            classes = [pick_classes(it["label"], lg, s.top_k, s.all_classes) for it, lg in zip(items, logits)]
            with autocast:
                maps = multiscale_maps(
                    ext,
                    x,
                    classes,
                    scales=tuple(s.scales),
                    flip=s.flip,
                    out_size=(math.ceil(h / s.stride), math.ceil(w / s.stride)),
                )
            for it, cls, m, lg in zip(items, classes, maps, logits):
                # eps far below any real map maximum: every non-zero map peaks at exactly 1
                m = normalize_maps(torch.relu(m.float()), mode="max", eps=1e-12).cpu().numpy()
                io.save_cams(out / f"{it['id']}.npz", np.asarray(cls), m, lg.cpu().numpy(), it["size"])
                n_maps += len(cls)
            done += len(items)
            bar.update(len(items))
    return CamCounts(done=done, failures=failures, maps=n_maps, seconds=time.time() - t0)
