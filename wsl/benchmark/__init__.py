"""CAM methods side by side: probes (faithfulness, sanity, cost), the table, the report, overlay pictures.

No Hydra here: stage=benchmark and stage=visualize call these with plain arguments, and so can a notebook::

    from wsl.benchmark import quality_row, markdown
    from wsl.evaluation import evaluate_localization, evaluate_cam_masks
    rows = {"gradcam": quality_row(evaluate_localization(ds, cams), evaluate_cam_masks(ds, cams))}
    print(markdown(rows, {"title": "mine"}))

Values are fractions in rows, ``results.json`` and ``benchmark.csv``, with bootstrap intervals over the
images as ``<key>_low`` / ``<key>_high`` (:mod:`~wsl.benchmark.bootstrap`); a :class:`Column` says how to
show them (percent for fraction columns) in ``benchmark.md``, ``report.html`` and the plots, where every
method keeps one look (:func:`style`) and methods with identical results are named together.
"""

from wsl.benchmark.bootstrap import interval, mean_interval
from wsl.benchmark.chain import ChainResult, ChainSettings, run_chain
from wsl.benchmark.columns import BY_KEY, COLUMNS, GROUPS, Column
from wsl.benchmark.cost import PEAK_MEMORY_NOTE, PeakMemory, cost
from wsl.benchmark.gallery import cell_scores, gallery
from wsl.benchmark.overlays import (
    auto_layers,
    class_maps,
    class_rows,
    failure_tiles,
    gt_boxes,
    misclassified,
    panel,
    read_boxes,
)
from wsl.benchmark.per_image import quality_intervals
from wsl.benchmark.plots import write_plots
from wsl.benchmark.probes import Item, Probes, default_blocks, faithfulness, load_items, probe, sanity
from wsl.benchmark.report import gallery_table, report_html, write_benchmark
from wsl.benchmark.rows import (
    Row,
    Rows,
    empty_row,
    failed_methods,
    localization_values,
    quality_row,
    segmentation_values,
    table,
)
from wsl.benchmark.selection import pick_images, resolve_methods
from wsl.benchmark.steps import Step, fresh, run_steps
from wsl.benchmark.styles import identical_groups, style
from wsl.benchmark.tables import best, csv_text, findings, identical, markdown, summary

__all__ = [
    "BY_KEY",
    "ChainResult",
    "ChainSettings",
    "COLUMNS",
    "GROUPS",
    "PEAK_MEMORY_NOTE",
    "Column",
    "Item",
    "PeakMemory",
    "Probes",
    "Row",
    "Rows",
    "Step",
    "auto_layers",
    "best",
    "cell_scores",
    "class_maps",
    "class_rows",
    "cost",
    "csv_text",
    "default_blocks",
    "empty_row",
    "failed_methods",
    "failure_tiles",
    "faithfulness",
    "findings",
    "fresh",
    "gallery",
    "gallery_table",
    "gt_boxes",
    "identical",
    "identical_groups",
    "interval",
    "load_items",
    "localization_values",
    "markdown",
    "mean_interval",
    "misclassified",
    "panel",
    "pick_images",
    "probe",
    "quality_intervals",
    "quality_row",
    "read_boxes",
    "report_html",
    "resolve_methods",
    "run_chain",
    "run_steps",
    "sanity",
    "segmentation_values",
    "style",
    "summary",
    "table",
    "write_benchmark",
    "write_plots",
]
