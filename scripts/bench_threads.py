"""stage=cams images/s with wsl's default thread count against one thread and torch's own default.

    python scripts/bench_threads.py --run-root outputs --limit 200          # idle machine
    python scripts/bench_threads.py --run-root outputs --limit 200 --load 2  # 2 busy processes beside it

Each setting runs the real command (``python -m wsl.run stage=cams stage.overwrite=true``) on the same run
(its classifier must exist: run stage=train first), in a fresh process, interleaved over ``--repeats``
rounds; the figure is the median of the images/s that stage=cams writes into its manifest:

    wsl default       threads=null: the cores this process may use minus the DataLoader workers
    threads=1         what OMP_NUM_THREADS=1 gives
    torch default     threads = every core of the machine (wsl's behaviour before it chose)

``--load N`` starts N processes that keep a core busy each for the whole measurement: a machine shared
with other jobs, where too many threads make torch's kernels wait on each other.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    "wsl default": [],
    "threads=1": ["threads=1"],
    "torch default": [f"threads={os.cpu_count() or 1}"],
}


def _burn() -> None:
    while True:
        pass


def images_per_s(args: argparse.Namespace, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "wsl.run", "stage=cams", "stage.overwrite=true", f"stage.limit={args.limit}",
           f"paths.output_root={args.run_root}", f"num_workers={args.workers}", *extra]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, env={k: v for k, v in os.environ.items()
                                                              if k != "OMP_NUM_THREADS"})  # fmt: skip
    manifest = Path(args.run_root) / args.run / "cams" / "gradcam" / "val" / "manifest.json"
    return float(json.loads(manifest.read_text())["images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-root", default="outputs", help="paths.output_root holding the trained run")
    p.add_argument("--run", default="toy-small_cnn")
    p.add_argument("--limit", type=int, default=200, help="val images per measurement")
    p.add_argument("--workers", type=int, default=2, help="num_workers (DataLoader workers)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--load", type=int, default=0, help="busy processes started beside the measurement")
    args = p.parse_args()
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    try:
        rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, extra in SETTINGS.items():
                rates[name].append(images_per_s(args, extra))
    finally:
        for b in burners:
            b.terminate()
    best = max(statistics.median(v) for v in rates.values())
    print(f"stage=cams, {args.limit} images, num_workers={args.workers}, {os.cpu_count()} cores, "
          f"{args.load} busy process(es) beside it; medians of {args.repeats}")  # fmt: skip
    print("| setting | images/s | of the best |\n|---|---:|---:|")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.1f} | {100 * med / best:.0f} % |")


if __name__ == "__main__":
    main()
