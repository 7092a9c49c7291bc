"""The columns of the benchmark table: what each one holds, which way is better, how it is shown.

Values are stored as computed (fractions in ``[0, 1]`` for accuracies, errors and rates); a column with
``percent`` shows its value multiplied by 100, only on display (markdown, HTML, logs, plots). A column
with ``interval`` has a bootstrap 95 % interval over images (row keys ``<key>_low`` / ``<key>_high``, see
:mod:`wsl.benchmark.bootstrap`) wherever its value was computed from per-image contributions; the cost
columns have none (see :data:`NO_INTERVAL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wsl.benchmark.bootstrap import HIGH, LEVEL, LOW, RESAMPLES

ARROW = {"max": "↑", "min": "↓", None: ""}


@dataclass(frozen=True)
class Column:
    """One column: ``key`` in a row, its ``header``, ``better`` ("max", "min" or None: no best), the
    ``digits`` shown, a ``help`` line, and ``percent`` for a fraction shown as a percentage."""

    key: str
    header: str
    better: Literal["max", "min"] | None
    digits: int
    help: str
    percent: bool = False
    interval: bool = True  # a bootstrap interval over images exists (when the probe / evaluation ran)
    minimum: float = 0.0  # differences below this (stored units) mean nothing: see tables.best

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    @property
    def low(self) -> str:
        return self.key + LOW

    @property
    def high(self) -> str:
        return self.key + HIGH

    def bounds(self, row: dict) -> tuple[float, float] | None:
        """The row's interval ``(low, high)`` of this column (stored units), or None."""
        lo, hi = row.get(self.low), row.get(self.high)
        return None if lo is None or hi is None else (float(lo), float(hi))

    def display_interval(self, row: dict) -> str:
        """``"[58.0, 64.9]"`` in display units, or ``""`` without an interval."""
        b = self.bounds(row)
        return "" if b is None else "[" + ", ".join(f"{v * self.scale:.{self.digits}f}" for v in b) + "]"

    def shown(self, value: float | None) -> float | None:
        """The value as displayed (percent where ``percent``), rounded to ``digits``; None stays None."""
        return None if value is None else round(float(value) * self.scale, self.digits)

    def display(self, value: float | None) -> str:
        """The cell text: ``"n/a"`` or the value in display units with ``digits`` decimals."""
        return "n/a" if value is None else f"{float(value) * self.scale:.{self.digits}f}"

    def title(self) -> str:
        """The header with its unit and the arrow saying which way is better, e.g. ``"CorLoc (%) ↑"``."""
        unit = " (%)" if self.percent else ""
        return f"{self.header}{unit} {ARROW[self.better]}".strip()


COLUMNS: tuple[Column, ...] = (
    Column(
        "gt_known_loc",
        "GT-known loc",
        "max",
        1,
        "box of the true class's map (15 % of its maximum, largest "
        "segment) has IoU >= 0.5 with a GT box of that class, over (image, labelled class)",
        percent=True,
    ),
    Column(
        "top1_loc_err",
        "top-1 loc err",
        "min",
        1,
        "the top-scoring class is wrong or its box misses (IoU < 0.5), over images (Grad-CAM protocol)",
        percent=True,
    ),
    Column(
        "maxboxacc_v2",
        "MaxBoxAccV2",
        "max",
        1,
        "box accuracy at the best map threshold, every contour boxed, "
        "mean over IoU 0.3 / 0.5 / 0.7 (Choe et al. 2020)",
        percent=True,
    ),
    Column(
        "corloc",
        "CorLoc",
        "max",
        1,
        "per class, the share of its images whose box has IoU >= 0.5; mean over classes",
        percent=True,
    ),
    Column(
        "pointing_game",
        "pointing",
        "max",
        1,
        "the map's maximum lies within 15 px of a GT box of the class (Zhang et al. 2016)",
        percent=True,
    ),
    Column(
        "miou",
        "mIoU fixed",
        "max",
        1,
        "CAM masks: background plane at the fixed threshold (0.15), argmax over "
        "the labelled classes' maps, VOC mIoU",
        percent=True,
    ),
    Column(
        "miou_tuned",
        "mIoU tuned",
        "max",
        1,
        "the same at the best background threshold, chosen on the ground "
        "truth of this split (optimistic, as papers do)",
        percent=True,
    ),
    Column(
        "pxap",
        "PxAP",
        "max",
        1,
        "area under the pixel precision-recall curve of the map against the class's "
        "mask (other classes are negatives)",
        percent=True,
    ),
    Column(
        "deletion_auc",
        "deletion AUC",
        "min",
        3,
        "class probability while the most salient pixels are removed "
        "(set to the mean colour), area under the curve (RISE)",
    ),
    Column(
        "insertion_auc",
        "insertion AUC",
        "max",
        3,
        "class probability while the most salient pixels are "
        "pasted onto a blurred copy, area under the curve (RISE)",
    ),
    Column(
        "average_drop",
        "Average Drop",
        "min",
        1,
        "mean relative drop of the class probability when the image is multiplied by its map (Grad-CAM++)",
        percent=True,
    ),
    Column(
        "increase_in_confidence",
        "Increase in Conf.",
        "max",
        1,
        "share of (image, class) pairs whose "
        "probability rises on the image multiplied by its map (Grad-CAM++)",
        percent=True,
    ),
    Column(
        "sanity_spearman",
        "sanity ρ",
        None,
        2,
        "Spearman rank correlation of |map| between the trained model "
        "and the model with its top layers randomised (a pass / fail check, no best: near 0 or negative "
        "passes); above the flag threshold the maps do not depend on what the model learned (Adebayo et al. "
        "2018)",
    ),
    Column(
        "images_per_s",
        "images/s",
        "max",
        1,
        "images per second: one forward pass + the method, single scale, "
        "no flip, maps of the labelled classes, one image at a time (median over the images)",
        interval=False,
    ),
    Column(
        "ms_per_map",
        "ms/map",
        "min",
        1,
        "milliseconds per (image, class) map, same measurement (median)",
        interval=False,
    ),
    Column(
        "peak_mb",
        "peak MB",
        "min",
        1,
        "peak memory added while computing the maps: the CUDA allocator's "
        "peak on a GPU, the process's resident set size sampled every 2 ms on a CPU (differences under "
        "1 MB are below what the sampler resolves: no best is marked then)",
        interval=False,
        minimum=1.0,
    ),
)

BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}

INTERVAL_NOTE = (
    f"[a, b]: bootstrap {100 * LEVEL:g} % interval over the images ({RESAMPLES} resamples with replacement, "
    "fixed seed, the same resampled image sets for every method); a ratio over the dataset (MaxBoxAccV2, "
    "PxAP, mIoU from one confusion matrix) is recomputed from the per-image counts of each resample, "
    "and MaxBoxAccV2 and mIoU tuned choose their threshold again in each"
)
NO_INTERVAL = (
    "The cost columns have no interval: they are medians of timings and one peak of memory on this "
    "machine, whose spread comes from the machine's load rather than from the choice of images"
)

# The column groups of the HTML table, in order.
GROUPS: dict[str, tuple[str, ...]] = {
    "localization": ("gt_known_loc", "top1_loc_err", "maxboxacc_v2", "corloc", "pointing_game"),
    "segmentation": ("miou", "miou_tuned", "pxap"),
    "faithfulness": ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"),
    "sanity": ("sanity_spearman",),
    "cost": ("images_per_s", "ms_per_map", "peak_mb"),
}
