"""Mean ± standard deviation of the headline figures over runs made with different seeds.

    for n in 0 1 2; do python -m wsl.run stage=train run=seed$n seed=$n; ...; done
    python scripts/seed_spread.py outputs/seed0 outputs/seed1 outputs/seed2

Reads what the stages wrote (train/metrics.json, eval/<cam>/<split>/<task>/metrics.json,
benchmark/results.json) through wsl's typed results and prints markdown tables in percent: the
classifier, localization (val), segmentation (train), the whole WSSS loop (CAM -> seeds -> pseudo-labels
-> final network on val, beside the published VOC figures: wsl.evaluation.loop) and, where every run has
one, the benchmark. The standard deviation is the sample one (n - 1); a figure missing from a run is left
out of that row.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from wsl import io
from wsl.evaluation import LocalizationResult, SegmentationResult
from wsl.evaluation.loop import loop_figures, loop_markdown
from wsl.layout import RunLayout


def spread(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    vals = [scale * v for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def table(title: str, rows: list[tuple[str, Callable[[object], float | None]]], results: list, **kw) -> str:
    lines = [f"### {title}", "", "| figure | mean ± std |", "| --- | ---: |"]
    for name, get in rows:
        lines.append(f"| {name} | {spread([get(r) if r is not None else None for r in results], **kw)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders (outputs/<run>)")
    p.add_argument("--cam", default="gradcam")
    args = p.parse_args()
    lays = [RunLayout(r) for r in args.runs]

    def read(path: Path):
        return io.read_json(path) if path.is_file() else None

    train = [read(RunLayout.metrics(lay.train())) for lay in lays]
    print(table("Classifier (val)", [("mAP", lambda m: m["best_val_map"]),
                                     ("F1 macro", lambda m: m["best_val_f1_macro"])], train))  # fmt: skip
    loc = [LocalizationResult.from_json(d) if (d := read(RunLayout.metrics(lay.eval(args.cam, "val",
           "localization")))) else None for lay in lays]  # fmt: skip
    print(table("Localization (val)", [
        ("top-1 loc error", lambda r: r.top1_loc_err), ("top-5 loc error", lambda r: r.top5_loc_err),
        ("GT-known loc", lambda r: r.gt_known_loc), ("CorLoc", lambda r: r.corloc),
        ("pointing game", lambda r: r.pointing_game), ("MaxBoxAcc (V1)", lambda r: r.max_box_acc),
        ("MaxBoxAccV2", lambda r: r.max_box_acc_v2), ("PxAP", lambda r: r.pxap),
        ("COCO box AP", lambda r: r.coco_ap), ("COCO box AP50", lambda r: r.coco_ap50),
    ], loc))  # fmt: skip
    seg_val = [SegmentationResult.from_json(d) if (d := read(RunLayout.metrics(lay.eval(args.cam, "val",
               "segmentation")))) else None for lay in lays]  # fmt: skip
    print(table("CAM masks (val)", [("mIoU, bg 0.15", lambda r: r.cams.miou),
                                    ("mIoU, tuned bg", lambda r: r.cams.miou_tuned)], seg_val))  # fmt: skip
    seg = [SegmentationResult.from_json(d) if (d := read(RunLayout.metrics(lay.eval(args.cam, "train",
           "segmentation")))) else None for lay in lays]  # fmt: skip
    print(table("Segmentation (train)", [
        ("CAM masks, bg 0.15", lambda r: r.cams.miou), ("CAM masks, tuned bg", lambda r: r.cams.miou_tuned),
        ("seeds mIoU", lambda r: r.seeds and r.seeds.miou),
        ("seeds coverage", lambda r: r.seeds and r.seeds.coverage),
        ("seeds mean precision", lambda r: r.seeds and r.seeds.mean_precision),
        ("seeds boat precision", lambda r: r.seeds and r.seeds.precision.get("boat")),
        ("pseudo-labels mIoU", lambda r: r.labels and r.labels.miou),
        ("pseudo-labels boat IoU", lambda r: r.labels and r.labels.per_class_iou.get("boat")),
    ], seg))  # fmt: skip
    loops = [loop_figures(lay, args.cam) for lay in lays]
    print(loop_markdown(loops, "The WSSS loop, mean ± std over the runs"))
    bench = [read(lay.benchmark() / "results.json") for lay in lays]
    if all(bench):
        rows = [b["rows"] for b in bench]
        keys = [
            "gt_known_loc",
            "top1_loc_err",
            "maxboxacc_v2",
            "corloc",
            "pointing_game",
            "miou",
            "miou_tuned",
            "pxap",
            "deletion_auc",
            "insertion_auc",
            "average_drop",
            "increase_in_confidence",
            "sanity_spearman",
            "ms_per_map",
        ]
        print("### Benchmark (val), mean ± std over the runs\n")
        print("| method | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
        for m in rows[0]:
            cells = []
            for k in keys:
                frac = k not in ("deletion_auc", "insertion_auc", "sanity_spearman", "ms_per_map")
                digits = 1 if frac or k == "ms_per_map" else 3
                cells.append(spread([r[m].get(k) for r in rows], 100.0 if frac else 1.0, digits))
            print(f"| {m} | " + " | ".join(cells) + " |")
    print(json.dumps({"runs": [str(r) for r in args.runs]}))


if __name__ == "__main__":
    main()
