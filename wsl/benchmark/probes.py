"""What the benchmark measures itself on a subset of images: faithfulness, sanity and cost.

- Faithfulness (:mod:`wsl.metrics.faithfulness`): deletion / insertion AUC (RISE) and Average Drop /
  Increase in Confidence (Grad-CAM++) of the STORED maps (the maps the other scores judge) for every
  (image, labelled class) pair; the class probability is the sigmoid of the logit (multi-label head).
- Sanity (:mod:`wsl.metrics.sanity`): cascading randomisation of the top ``blocks`` of a copy of the model,
  maps recomputed single-scale, Spearman rank correlation of |map| with the trained model's maps.
- Cost: one forward pass + the method per image (single scale, no flip, labelled classes), timed after
  one warm-up image; peak memory added meanwhile, see :class:`PeakMemory`.

Average Drop and Increase in Confidence are fractions here (the metric's percentages / 100).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsl import io
from wsl.cam import CAMExtractor
from wsl.data.transforms import to_tensor
from wsl.metrics.faithfulness import average_drop_increase, deletion_insertion
from wsl.metrics.sanity import cascading_randomization, flag

log = logging.getLogger(__name__)

PEAK_MEMORY_NOTE = (
    "peak memory added while the maps are computed. CUDA: torch.cuda.max_memory_allocated minus the "
    "allocation at the start (the peak counter is reset). CPU (Linux): a thread samples the resident set "
    "size from /proc/self/statm every 2 ms; the largest sample minus the size at the start. Spikes shorter "
    "than 2 ms can be missed and memory the allocator reuses from earlier work does not show: a lower bound."
)


@dataclass
class Item:
    """One image of a subset: its id, the normalised tensor ``(1, 3, H, W)`` and its labelled classes."""

    id: str
    x: torch.Tensor
    classes: list[int]


def load_items(ds, indices: list[int], mean, std, device: torch.device) -> list[Item]:
    """The readable images among ``indices`` that have at least one labelled class."""
    items, labels = [], ds.labels()
    for i in indices:
        classes = np.flatnonzero(labels[i] > 0).tolist()
        try:
            image = ds.load_image(i)
        except OSError:
            continue
        if classes:
            items.append(Item(ds.ids[i], to_tensor(image, mean, std)[None].to(device), classes))
    return items


class PeakMemory:
    """Peak memory added inside a ``with`` block, in MB (``peak_mb``; None where it cannot be measured):
    see :data:`PEAK_MEMORY_NOTE` for how."""

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._max = 0

    @staticmethod
    def rss() -> int | None:
        try:
            with open("/proc/self/statm", encoding="ascii") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, self.rss() or 0)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self.rss()
            self._max = self._base or 0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        end = self.rss()
        if self._base is not None and end is not None:
            self.peak_mb = max(self._max, end) / 2**20 - self._base / 2**20


def cost(model: nn.Module, method: str, layer: str, items: list[Item], device: torch.device) -> dict:
    """``images_per_s``, ``ms_per_map`` (medians over the images, robust to a busy machine) and
    ``peak_mb`` of ``method`` on ``items``; the first item is a warm-up, not counted."""
    if len(items) < 2:
        return {}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    seconds = []
    with CAMExtractor(model, method=method, target_layer=layer) as ext:
        ext(items[0].x, [items[0].classes])
        with PeakMemory(device) as mem:
            for it in items[1:]:
                sync(device)
                start = time.perf_counter()
                ext(it.x, [it.classes])
                sync(device)
                seconds.append(time.perf_counter() - start)
    per_map = [t / len(it.classes) for t, it in zip(seconds, items[1:])]
    return {
        "images_per_s": 1.0 / float(np.median(seconds)),
        "ms_per_map": 1000 * float(np.median(per_map)),
        "peak_mb": mem.peak_mb,
    }


def faithfulness(model: nn.Module, items: list[Item], cams: Path, steps: int) -> dict:
    """Deletion / insertion AUC and Average Drop / Increase (fractions) over the (image, labelled class)
    pairs whose map is stored in the folder ``cams``; mean curves ``(x, y)``: ``deletion_curve``,
    ``insertion_curve``."""

    def score(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(x).float())

    runs: dict[str, list[dict]] = {"deletion": [], "insertion": []}
    drops, increases = [], []
    for it in items:
        path = Path(cams) / f"{it.id}.npz"
        if not io.is_complete_npz(path):
            continue
        rec = io.load_cams(path)
        keep = [k for k, c in enumerate(rec["classes"].tolist()) if c in it.classes]
        if not keep:
            continue
        maps = torch.from_numpy(rec["maps"][keep]).to(it.x.device)
        cls = torch.as_tensor(rec["classes"][keep], device=it.x.device)
        images = it.x.expand(len(keep), -1, -1, -1)
        for mode, results in runs.items():
            results.append(deletion_insertion(score, images, cls, maps, mode, n_steps=steps))
        adi = average_drop_increase(score, images, cls, maps)  # Grad-CAM++ Sec. 5.1, fractions
        drops.append(adi["drop"].double())
        increases.append(adi["increase"].double())
    if not drops:
        return {}
    out: dict = {"faithfulness_pairs": int(torch.cat(drops).numel())}
    x = torch.linspace(0, 1, steps + 1).tolist()
    for mode, results in runs.items():
        out[f"{mode}_auc"] = float(torch.cat([r["auc"] for r in results]).mean())
        out[f"{mode}_curve"] = (x, torch.cat([r["curves"] for r in results]).mean(0).tolist())
    out["average_drop"] = float(torch.cat(drops).mean())
    out["increase_in_confidence"] = float(torch.cat(increases).mean())
    return out


def default_blocks(model: nn.Module, depth: int) -> list[str]:
    """The last ``depth`` convolution / linear layers of ``model``, top (logits) first."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return names[::-1][:depth]


def sanity(model: nn.Module, method: str, layer: str, items: list[Item], blocks: list[str], threshold: float,
           seed: int) -> dict:  # fmt: skip
    """Mean Spearman (and SSIM) of |map| after randomising ``blocks[0..i]``, over all maps of ``items``;
    ``flagged`` when the mean Spearman after all ``blocks`` is above ``threshold``."""

    def map_fn(m: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        with CAMExtractor(m, method=method, target_layer=layer) as ext:
            return ext(x, classes)

    rho, ssim = [], []
    for it in items:
        classes = torch.tensor([it.classes], device=it.x.device)
        res = cascading_randomization(model, blocks, map_fn, it.x, classes, seed=seed)
        rho.append(res["spearman_per_map"])
        ssim.append(res["ssim_per_map"])
    if not rho:
        return {}
    curve, ssim_curve = np.concatenate(rho, 1).mean(1), np.concatenate(ssim, 1).mean(1)
    return {
        "sanity_curve": curve.tolist(),
        "sanity_ssim": ssim_curve.tolist(),
        "sanity_spearman": float(curve[-1]),
        "flagged": bool(flag({"spearman": curve}, threshold)),
    }


def probe(status: dict[str, str], name: str, fn: Callable[[], dict]) -> dict:
    """Run one measurement; a failure is logged and recorded in ``status[name]``, never raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a method a probe cannot handle is reported, not fatal
        log.warning("benchmark: %s failed: %s: %s", name, type(e).__name__, e)
        status[name] = f"failed: {type(e).__name__}: {e}"
        return {}


@dataclass
class Probes:
    """The model and the image subsets every method is probed on (empty subset: that probe is skipped)."""

    model: nn.Module
    device: torch.device
    layer: str
    blocks: list[str]
    faith: list[Item] = field(default_factory=list)
    sane: list[Item] = field(default_factory=list)
    costly: list[Item] = field(default_factory=list)
    steps: int = 20
    threshold: float = 0.5
    seed: int = 0

    def measure(self, method: str, cams: Path | None, status: dict[str, str]) -> dict:
        """Faithfulness of the stored maps in ``cams`` (None: skipped), sanity and cost of ``method``;
        a failing probe is recorded in ``status`` and leaves its columns n/a."""
        out: dict = {}
        if cams is not None and self.faith:
            out |= probe(
                status, "faithfulness", lambda: faithfulness(self.model, self.faith, cams, self.steps)
            )
        if self.sane:
            args = (self.model, method, self.layer, self.sane, self.blocks, self.threshold, self.seed)
            out |= probe(status, "sanity", lambda: sanity(*args))
        if self.costly:
            out |= probe(
                status, "cost", lambda: cost(self.model, method, self.layer, self.costly, self.device)
            )
        return out

    def notes(self) -> str:
        """What the probes were run on, for the report's legend."""
        return (
            f"Faithfulness on the first {len(self.faith)} images ({self.steps} steps), sanity on "
            f"{len(self.sane)} images randomising {', '.join(self.blocks)} "
            f"(flag: Spearman > {self.threshold}), "
            f"cost on {max(len(self.costly) - 1, 0)} images after one warm-up image."
        )
