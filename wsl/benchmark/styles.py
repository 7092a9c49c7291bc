"""One look per CAM method in every figure of the benchmark, and the methods whose results coincide.

:func:`style` gives a method a fixed colour, marker and line style from its place in
:data:`wsl.cam.METHODS` (a name outside it gets the next free look), so a method looks the same in every
plot, in the HTML table and in the gallery. :func:`identical_groups` finds methods whose values agree
(to :data:`TOLERANCE`, far below any shown digit): e.g. CAM, Grad-CAM, HiResCAM and XGrad-CAM give the same
maps on a GAP + linear head, up to float rounding. The plots draw such a group once, named after all of
its members (:func:`group_label`), and the report says in words which methods they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from wsl.cam import METHODS

# tab10, black, then tab20's light shades, so that the 21 methods of wsl.cam.METHODS each have their own
# colour and marker (tests/benchmark/test_plots.py).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#000000", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
          "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31")  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "H", "8", "1", "2", "3", "4",
           "+", "x", "|", "_", ".")  # fmt: skip
LINES = ("-", "--", "-.", ":")
TOLERANCE = 1e-5  # values closer than this are "identical" (stored units: fractions, probabilities, ...)


def style(method: str, order: Sequence[str] = tuple(METHODS)) -> dict[str, str]:
    """``{"color", "marker", "linestyle"}`` of ``method``, fixed by its index in ``order`` (a method not
    in ``order`` gets the look after the last one, by the order of its name's characters)."""
    i = order.index(method) if method in order else len(order) + sum(map(ord, method)) % 5
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINES[i % len(LINES)]}  # fmt: skip


def styles(methods: Iterable[str]) -> dict[str, dict[str, str]]:
    """:func:`style` of each method."""
    return {m: style(m) for m in methods}


def _flat(value: Any) -> list[float | None]:
    """A value or a curve ``(x, y)`` / list as one flat list of floats (None where absent)."""
    if value is None or isinstance(value, bool | str):
        return [None]
    if isinstance(value, list | tuple):
        return [v for part in value for v in _flat(part)]
    v = float(value)
    return [v if math.isfinite(v) else None]


def same(a: Any, b: Any, tol: float = TOLERANCE) -> bool:
    """True when ``a`` and ``b`` (numbers, curves, lists; None = absent) agree to ``tol`` everywhere."""
    fa, fb = _flat(a), _flat(b)
    return len(fa) == len(fb) and all(
        (x is None and y is None) or (x is not None and y is not None and abs(x - y) <= tol)
        for x, y in zip(fa, fb)
    )


def identical_groups(items: Mapping[str, Any], equal: Callable[[Any, Any], bool] = same) -> list[list[str]]:
    """Methods of ``items`` (``{method: value}``, in order) gathered by ``equal`` values; every method is in
    exactly one group, groups keep the order of their first member. With :func:`same`, methods with every
    value absent (None) stay alone."""
    groups: list[list[str]] = []
    for m, v in items.items():
        empty = equal is same and all(x is None for x in _flat(v))
        home = None if empty else next((g for g in groups if equal(items[g[0]], v)), None)
        if home is None:
            groups.append([m])
        else:
            home.append(m)
    return groups


def group_label(names: Sequence[str], width: int = 30) -> str:
    """The legend entry of methods drawn once: ``"cam = gradcam = hirescam"``, wrapped at ``width``."""
    lines, line = [], ""
    for k, name in enumerate(names):
        piece = name if k == 0 else f" = {name}"
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line, piece = "", f"= {name}"
        line += piece
    return "\n".join([*lines, line])
