"""The two kinds of bad input (README "Bad input") and how a stage counts the second kind.

- :class:`UserError`: a problem with the whole run (a missing input, a bad option, a checkpoint that does
  not fit, a dataset that is not where the configuration says, too many bad items). ``wsl.run`` reports it
  as one line and exit code 2, never as a traceback.
- :class:`BadItem`: a problem with ONE item of a split (an unreadable, empty, truncated or too small image,
  a mask or annotation that disagrees with its image, a damaged stored file). The stage skips the item with
  one warning naming the file and the reason, and records it in :class:`Failures`; the split fails as a
  whole (one :class:`UserError` line) only when more than ``stage.max_failed`` of it is bad
  (:meth:`Failures.check`).

Anything else that escapes a stage is a bug in wsl and keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("wsl")


class UserError(RuntimeError):
    """A problem the user can fix (missing input, bad option): one line, no traceback, exit code 2."""


class BadItem(OSError):
    """One item of a dataset cannot be used; the message names the file and the reason.

    An ``OSError`` because that is what an unreadable image raises anyway: every place that skips an
    unreadable image skips these too (a too-small image, a size that disagrees with the annotation...).
    """


class Failures:
    """The bad items a stage met: ``{image id: reason}``, each logged once when first added.

    ``merge(other) -> self`` joins the parts of several processes (``wsl.dist.merge_all``); the manifest
    records :meth:`as_dict` beside the count.
    """

    def __init__(self, items: dict[str, str] | None = None) -> None:
        self.items: dict[str, str] = dict(items or {})

    def add(self, image_id: str, reason: object) -> None:
        """Record ``image_id`` as skipped because of ``reason`` (one warning the first time)."""
        if image_id not in self.items:
            text = " ".join(str(reason).split())  # one line, whatever the exception said
            self.items[image_id] = text
            log.warning("skipping %s: %s", image_id, text)

    def update(self, pairs: Iterable[tuple[str, str]]) -> None:
        for image_id, reason in pairs:
            self.add(image_id, reason)

    def merge(self, other: Failures) -> Failures:
        for image_id, reason in other.items.items():
            self.items.setdefault(image_id, reason)
        return self

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.items

    def as_dict(self) -> dict[str, str]:
        """``{id: reason}`` sorted by id (what the manifest stores)."""
        return dict(sorted(self.items.items()))

    def check(self, total: int, max_failed: float, what: str) -> None:
        """Raise one :class:`UserError` line when more than ``max_failed`` (a fraction) of ``total`` items
        failed; ``what`` names the split, e.g. ``"cams gradcam/val"``."""
        if total <= 0 or len(self) <= max_failed * total:
            return
        first = "; ".join(f"{k}: {v}" for k, v in list(self.as_dict().items())[:3])
        raise UserError(
            f"{what}: {len(self)} of {total} items failed ({len(self) / total:.1%}), more than "
            f"stage.max_failed={max_failed:g} (first: {first[:300]}); fix or remove them, or raise "
            "stage.max_failed"
        )
