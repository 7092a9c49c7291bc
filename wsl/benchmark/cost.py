"""What one CAM method costs: time per image and per map, and the peak memory added while maps are made.

Timed after one warm-up image, one forward pass + the method per image (single scale, no flip, the
labelled classes), medians over the images (robust to a busy machine). These are measurements of one run,
not averages over images, so the table gives them no bootstrap interval.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import torch
from torch import nn

from wsl.cam import CAMExtractor

PEAK_MEMORY_NOTE = (
    "peak memory added while the maps are computed. CUDA: torch.cuda.max_memory_allocated minus the "
    "allocation at the start (the peak counter is reset). CPU (Linux): a thread samples the resident set "
    "size from /proc/self/statm every 2 ms; the largest sample minus the size at the start. Spikes shorter "
    "than 2 ms can be missed and memory the allocator reuses from earlier work does not show: a lower bound."
)


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


def cost(model: nn.Module, method: str, layer: str, items: list, device: torch.device) -> dict:
    """``images_per_s``, ``ms_per_map`` (medians over the images, robust to a busy machine) and
    ``peak_mb`` of ``method`` on ``items`` (:class:`wsl.benchmark.probes.Item`: ``x`` and ``classes``); the
    first item is a warm-up, not counted."""
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
