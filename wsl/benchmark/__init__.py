"""CAM methods side by side: probes (faithfulness, sanity, cost), the table, the report, overlay pictures.

No Hydra here: stage=benchmark and stage=visualize call these with plain arguments, and so can a notebook::

    from wsl.benchmark import quality_row, markdown
    from wsl.evaluation import evaluate_localization, evaluate_cam_masks
    rows = {"gradcam": quality_row(evaluate_localization(ds, cams), evaluate_cam_masks(ds, cams))}
    print(markdown(rows, {"title": "mine"}))

Values are fractions in rows, ``results.json`` and ``benchmark.csv``; a :class:`Column` says how to show
them (percent for fraction columns) in ``benchmark.md``, ``report.html`` and the plots.
"""

from wsl.benchmark.chain import ChainResult, ChainSettings, run_chain
from wsl.benchmark.columns import BY_KEY, COLUMNS, GROUPS, Column
from wsl.benchmark.overlays import (
    auto_layers,
    class_maps,
    class_rows,
    failure_tiles,
    gallery,
    gt_boxes,
    misclassified,
    panel,
    read_boxes,
)
from wsl.benchmark.probes import (
    PEAK_MEMORY_NOTE,
    Item,
    PeakMemory,
    Probes,
    cost,
    default_blocks,
    faithfulness,
    load_items,
    probe,
    sanity,
)
from wsl.benchmark.report import gallery_table, report_html, write_benchmark, write_plots
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
from wsl.benchmark.tables import best, csv_text, markdown, summary

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
    "class_maps",
    "class_rows",
    "cost",
    "csv_text",
    "default_blocks",
    "empty_row",
    "failed_methods",
    "failure_tiles",
    "faithfulness",
    "fresh",
    "gallery",
    "gallery_table",
    "gt_boxes",
    "load_items",
    "localization_values",
    "markdown",
    "misclassified",
    "panel",
    "pick_images",
    "probe",
    "quality_row",
    "read_boxes",
    "report_html",
    "resolve_methods",
    "run_chain",
    "run_steps",
    "sanity",
    "segmentation_values",
    "summary",
    "table",
    "write_benchmark",
    "write_plots",
]
