"""Make-style steps for one method (maps, boxes, evaluations): reuse what is on disk, report failures.

A :class:`Step` makes its output, or loads it back when the caller says the output on disk is still good
(see :func:`fresh`). :func:`run_steps` runs them in order: a step whose prerequisites did not run is
skipped, and a failing step is logged and recorded, never raised, so one broken method never stops the
benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsl.benchmark.rows import OK
from wsl.errors import UserError

log = logging.getLogger(__name__)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else float("inf")


def fresh(output: Path, *inputs: Path) -> bool:
    """True when ``output`` exists and is at least as new as every existing input."""
    output = Path(output)
    return output.is_file() and all(_mtime(output) >= _mtime(Path(p)) for p in inputs if Path(p).is_file())


@dataclass(frozen=True)
class Step:
    """``make()`` computes and writes the output and returns its value; with ``reuse`` the output on disk
    is kept and ``load()`` (when given) reads its value back. ``needs``: names of earlier steps."""

    name: str
    make: Callable[[], Any]
    reuse: bool = False
    load: Callable[[], Any] | None = None
    needs: tuple[str, ...] = ()


def run_steps(steps: Sequence[Step], what: str = "") -> tuple[dict[str, str], dict[str, Any]]:
    """Run ``steps`` in order. Returns ``({name: "ran" | "reused" | "failed: <why>" | "skipped: <why>"},
    {name: value})``; a step whose saved output cannot be loaded back is made again."""
    status: dict[str, str] = {}
    values: dict[str, Any] = {}
    for s in steps:
        broken = [n for n in s.needs if status.get(n) not in OK]
        if broken:
            status[s.name] = f"skipped: {broken[0]} did not run"
            continue
        if s.reuse:
            try:
                values[s.name] = s.load() if s.load is not None else None
                status[s.name] = "reused"
                continue
            except Exception as e:  # noqa: BLE001 - an unreadable old output is made again
                log.info(
                    "benchmark: %s of %s on disk cannot be reused (%s): making it again", s.name, what, e
                )
        try:
            values[s.name] = s.make()
            status[s.name] = "ran"
        except UserError as e:
            log.warning("benchmark: %s of %s failed: %s", s.name, what, e)
            status[s.name] = f"failed: {e}"
        except Exception as e:  # noqa: BLE001 - one broken method or evaluator must not stop the others
            log.exception("benchmark: %s of %s failed", s.name, what)
            status[s.name] = f"failed: {type(e).__name__}: {e}"
    return status, values
