"""Images/s of stage=cams and stage=eval with 1 and N processes (torchrun), and the ratios.

    python scripts/bench_scale.py                       # toy val split (200 images), 1 and 2 processes
    python scripts/bench_scale.py --procs 1 2 4 --repeats 3 --run-root outputs/bench_scale

Each setting runs the real command in fresh processes (``python -m wsl.run`` for 1, ``torchrun
--standalone --nproc_per_node=N -m wsl.run`` for N), interleaved over ``--repeats`` rounds, on the same run
(its classifier is trained first, one epoch, when missing: quality does not matter to speed). The cores
are split evenly (``threads = cores // N``, ``num_workers=0``), so that N processes use the same machine
as one. Three figures per stage, medians over the rounds:

    stage images/s   images / the stage's own wall time (manifest ``wall_time_s``: model and data loading
                     included, interpreter start and process-group set-up not)
    command images/s images / the whole command's wall time, as a user sees it
    per image        the stage's seconds per image x N: the cost of one image on one process's cores

The ratios (N processes / 1 process) say how the work scales; the per-image costs feed the estimates of
README "Running on a cluster". Timing varies with the other work on the machine: say so with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = "toy-small_cnn"


def command(nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "wsl.run", *args]
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*head, "-m", "wsl.run", *args]


def run(nproc: int, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    r = subprocess.run(command(nproc, args), cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(
            f"failed ({r.returncode}): {' '.join(command(nproc, args))}\n{(r.stdout + r.stderr)[-3000:]}"
        )
    return seconds


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def measure(nproc: int, common: list[str], root: Path, cores: int) -> dict[str, dict[str, float]]:
    threads = [f"threads={max(1, cores // nproc)}", "num_workers=0"]
    out: dict[str, dict[str, float]] = {}
    wall = run(nproc, ["stage=cams", "stage.overwrite=true", *threads, *common])
    m = read_manifest(root / RUN / "cams" / "gradcam" / "val")
    n = m["counts"]["done"]
    out["cams"] = {"images": n, "stage": n / m["wall_time_s"], "command": n / wall,
                   "per_image": m["wall_time_s"] * nproc / n}  # fmt: skip
    wall = run(nproc, ["stage=eval", "stage.task=localization", *threads, *common])
    m = read_manifest(root / RUN / "eval" / "gradcam" / "val" / "localization")
    n = m["counts"]["done"]
    out["eval"] = {"images": n, "stage": n / m["wall_time_s"], "command": n / wall,
                   "per_image": m["wall_time_s"] * nproc / n}  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--run-root", type=Path, default=None, help="output root (default: a temporary folder)")
    p.add_argument("--data-root", type=Path, default=REPO / "data", help="where the toy data is (made once)")
    a = p.parse_args()
    if a.procs[0] != 1:
        sys.exit("--procs must start with 1 (the reference of the ratios)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    tmp = None if a.run_root else Path(tempfile.mkdtemp(prefix="wsl_bench_scale_"))
    root = a.run_root or tmp
    common = [f"paths.output_root={root}", f"paths.data_root={a.data_root}", "cam=gradcam", "stage.split=val"]
    try:
        if not (root / RUN / "train" / "best.pt").is_file():
            print("training the classifier once (1 epoch) ...", flush=True)
            train = [
                "stage=train",
                "stage.epochs=1",
                f"paths.output_root={root}",
                f"paths.data_root={a.data_root}",
            ]
            run(1, train)
        results: dict[int, list[dict]] = {n: [] for n in a.procs}
        for k in range(a.repeats):
            for n in a.procs:
                results[n].append(measure(n, common, root, cores))
                print(f"round {k + 1}/{a.repeats}, {n} process(es): done", flush=True)
        report(results, cores)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict[int, list[dict]], cores: int) -> None:
    med = {n: {s: {f: statistics.median(r[s][f] for r in rounds) for f in rounds[0][s]} for s in rounds[0]}
           for n, rounds in results.items()}  # fmt: skip
    print(f"\n{cores} core(s); medians of {len(next(iter(results.values())))} round(s)\n")
    print("| stage | processes | images | stage images/s | command images/s | per image (s, one process) "
          "| stage ratio vs 1 | command ratio vs 1 |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for stage in ("cams", "eval"):
        base = med[1][stage]
        for n, m in med.items():
            s = m[stage]
            print(f"| {stage} | {n} | {s['images']:.0f} | {s['stage']:.1f} | {s['command']:.1f} | "
                  f"{s['per_image']:.4f} | {s['stage'] / base['stage']:.2f} | "
                  f"{s['command'] / base['command']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
