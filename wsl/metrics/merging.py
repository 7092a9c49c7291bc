"""The merge check shared by every accumulator of ``wsl.metrics`` (and ``wsl.evaluation``).

Accumulators follow one contract: ``update`` adds one item, ``merge(other) -> self`` adds the counts of
another accumulator (another shard, another process: ``wsl.dist.merge_all``), ``compute`` returns a frozen
dataclass. Merging is only meaningful between accumulators with the same settings.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_mergeable"]


def check_mergeable(acc, other, *names: str) -> None:
    """Raise unless ``other`` is an accumulator of the same type with the same settings ``names``.

    Shared by every ``merge`` of ``wsl.metrics``: a ``TypeError`` for another type, a ``ValueError`` when
    a setting (class count, thresholds, ...) differs, since the counts would then mean different things.
    """
    if type(other) is not type(acc):
        raise TypeError(f"cannot merge {type(other).__name__} into {type(acc).__name__}")
    for name in names:
        a, b = getattr(acc, name), getattr(other, name)
        same = np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b
        if not same:
            raise ValueError(f"cannot merge {type(acc).__name__}s with different {name}: {a!r} != {b!r}")
