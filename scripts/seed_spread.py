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


# The benchmark columns: (key, header, higher is better; None: no best), in percent unless listed in RAW.
BENCH = [
    ("gt_known_loc", "GT-known loc ↑", True), ("top1_loc_err", "top-1 loc err ↓", False),
    ("maxboxacc_v2", "MaxBoxAccV2 ↑", True), ("corloc", "CorLoc ↑", True),
    ("pointing_game", "pointing ↑", True), ("miou", "mIoU fixed ↑", True),
    ("miou_tuned", "mIoU tuned ↑", True), ("pxap", "PxAP ↑", True),
    ("deletion_auc", "deletion AUC ↓", False), ("insertion_auc", "insertion AUC ↑", True),
    ("average_drop", "Avg Drop ↓", False), ("increase_in_confidence", "Inc. Conf ↑", True),
    ("sanity_spearman", "sanity ρ", None), ("ms_per_map", "ms/map ↓", False),
]  # fmt: skip
RAW = {"deletion_auc": 3, "insertion_auc": 3, "sanity_spearman": 2, "ms_per_map": 1}


def benchmark_table(rows: list[dict[str, dict]]) -> str:
    """The README's benchmark table from the ``rows`` of several runs' ``benchmark/results.json``.

    Methods whose every figure but the cost agrees in every run (to 1e-5, as the report groups them) share
    a row, their costs shown as the range of their means. Bold: the best mean of a column when it differs
    from the next by more than the larger of their standard deviations. ⚠: flagged by the sanity check in
    every run.
    """
    methods = list(rows[0])
    quality = [k for k, _, _ in BENCH if k != "ms_per_map"]

    def same(a: str, b: str) -> bool:
        return all(
            (r[a].get(k) is None) == (r[b].get(k) is None)
            and (r[a].get(k) is None or abs(r[a][k] - r[b][k]) <= 1e-5)
            for r in rows
            for k in quality
        )

    groups: list[list[str]] = []
    for m in methods:
        for g in groups:
            if same(g[0], m):
                g.append(m)
                break
        else:
            groups.append([m])

    def stats(m: str, key: str) -> tuple[float, float] | None:
        vals = [r[m][key] for r in rows if r[m].get(key) is not None]
        if not vals:
            return None
        return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0

    best: dict[str, str] = {}
    for key, _, higher in BENCH:
        if higher is None:
            continue
        # a shared row's cost is a range: the best cost is its cheapest member's; other columns, the row's
        candidates = methods if key == "ms_per_map" else [g[0] for g in groups]
        ranked = sorted(((s, m) for m in candidates if (s := stats(m, key))), key=lambda t: t[0][0],
                        reverse=higher)  # fmt: skip
        if len(ranked) > 1 and abs(ranked[0][0][0] - ranked[1][0][0]) > max(ranked[0][0][1], ranked[1][0][1]):
            best[key] = ranked[0][1]
    head = "| method | " + " | ".join(h for _, h, _ in BENCH) + " |"
    lines = [head, "|---|" + "---:|" * len(BENCH)]
    for g in groups:
        flagged = all(r[m].get("flagged") for r in rows for m in g)
        cells = []
        for key, _, _ in BENCH:
            scale, digits = (1.0, RAW[key]) if key in RAW else (100.0, 1)
            if key == "ms_per_map" and len(g) > 1:
                means = [s[0] for m in g if (s := stats(m, key))]
                text = f"{min(means):.1f}-{max(means):.1f}" if means else "n/a"
                star = best.get(key) in g
            else:
                text = spread([r[g[0]].get(key) for r in rows], scale, digits)
                star = best.get(key) == g[0]
            cells.append(f"**{text}**" if star else text)
        name = " = ".join(g) + (" ⚠" if flagged else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
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
        print(benchmark_table([b["rows"] for b in bench]))
    print(json.dumps({"runs": [str(r) for r in args.runs]}))


if __name__ == "__main__":
    main()
