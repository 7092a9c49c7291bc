"""What a comparison runs on: the CAM methods and the images, checked with one clear error each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wsl.cam import METHODS
from wsl.errors import UserError


def resolve_methods(methods: Iterable[str] | None, known: Sequence[str] = tuple(METHODS)) -> list[str]:
    """``methods`` as a list (None: every method of ``known``), each checked against ``known``."""
    names = list(known) if methods is None else [str(m) for m in methods]
    bad = [m for m in names if m not in known]
    if bad or not names:
        raise UserError(f"stage.methods: unknown {bad or 'empty list'}; choose from {', '.join(known)}")
    return names


def pick_images(ds, ids: Iterable | None, first: int, option: str = "stage.ids") -> list[int]:
    """Dataset indices of the images ``ids`` (each checked: ``option`` names the setting in the error), or
    of the first ``first`` images when ``ids`` is empty."""
    if not ids:
        return list(range(min(int(first), len(ds))))
    wanted = [str(i) for i in ids]
    missing = [i for i in wanted if i not in ds.ids]
    if missing:
        raise UserError(f"{option}: {missing} are not images of split {ds.split!r}")
    return [ds.ids.index(i) for i in wanted]
