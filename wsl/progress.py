"""Progress of long loops: a tqdm bar on a terminal, a log line every ``interval`` seconds otherwise.

Output that is not a terminal (nohup, SLURM, CI, a log file) gets ``done/total, rate, ETA`` lines through
``logging`` instead of a bar that nobody sees. Only rank 0 reports; other ranks stay quiet. The interval
is ``WSL_PROGRESS_INTERVAL`` seconds (default 30).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from wsl import dist

T = TypeVar("T")
log = logging.getLogger("wsl.progress")


def _interval() -> float:
    try:
        return float(os.environ.get("WSL_PROGRESS_INTERVAL", "30"))
    except ValueError:
        return 30.0


class Progress(Generic[T]):
    """Iterate ``iterable`` (or call :meth:`update` by hand when it is None), reporting as it goes."""

    def __init__(self, iterable: Iterable[T] | None, desc: str, total: int | None = None, unit: str = "img"):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.done = total, 0
        self.quiet = not dist.is_main()
        self.bar = None
        if not self.quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if not self.quiet and now - self.last >= _interval():
            self.last = now
            log.info("%s: %s", self.desc, self.status(now))

    def status(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.monotonic()) - self.start)
        rate = self.done / elapsed
        total = "?" if self.total is None else self.total
        text = f"{self.done}/{total} {self.unit}, {rate:.2f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {_clock((self.total - self.done) / rate)}"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def track(
    iterable: Iterable[T] | None, desc: str, total: int | None = None, unit: str = "img"
) -> Progress[T]:
    """``for x in track(items, "cams gradcam val"): ...`` with a bar or periodic log lines."""
    return Progress(iterable, desc, total, unit)
