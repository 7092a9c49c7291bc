"""Time and peak memory of all-class extraction against the class chunk size (the ``max_grad_mb`` budget).

    python scripts/bench_chunks.py                                  # ResNet-50, 1000 classes, 224 px
    python scripts/bench_chunks.py --classes 80 --size 448 --batch 2   # COCO's 80 classes at 448 px
    python scripts/bench_chunks.py --budgets 4 16 64 256 --device cuda

Each budget runs Grad-CAM at ``layer4`` for every class of one batch once, in a fresh process (so that the
peak of one run does not hide the next), which measures the growth of its peak memory over the model and
one single-class call: the resident set size on the CPU (coarse: the allocator keeps and reuses freed
pages, so differences of a few tens of MiB are noise), ``torch.cuda.max_memory_allocated`` on CUDA.
``auto`` is the default budget (a quarter of the free memory), ``off`` one chunk of all the classes
(no budget). The table gives the classes per chunk the budget allowed, the seconds and the peak growth.
"""

from __future__ import annotations

import argparse
import logging

import torch
from bench_cams import peak_run  # scripts/ is on sys.path when this file runs as a script

log = logging.getLogger("bench_chunks")
UNBOUNDED = 1e9  # MiB: one chunk holds every class


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50", help="torchvision ResNet")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--size", type=int, default=224, help="square input size (px)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument(
        "--budgets", nargs="+", default=["8", "32", "128", "512", "auto", "off"], help="MiB, auto or off"
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if name == "auto" else name
    base = {"kind": "wsl", "arch": args.arch, "num_classes": args.classes, "size": args.size,
            "batch": args.batch, "threads": args.threads, "device": device}  # fmt: skip
    rows = []
    for budget in args.budgets:
        mb = None if budget == "auto" else UNBOUNDED if budget == "off" else float(budget)
        seconds, peak, chunk = peak_run({**base, "max_grad_mb": mb})
        log.info("budget %s: %d classes per chunk, %.2f s, %.0f MiB", budget, chunk, seconds, peak)
        rows.append((budget, chunk, seconds, peak))
    print(
        f"{args.arch} (random weights, {args.classes} classes), Grad-CAM at layer4 for every class, batch "
        f"{args.batch}, {args.size} px, device {device}, {args.threads} threads, one run per budget\n"
    )
    print("| budget (MiB) | classes per chunk | chunks | time | peak memory growth |")
    print("|---|---|---|---|---|")
    for budget, chunk, seconds, peak in rows:
        chunks = -(-args.classes // chunk)
        print(f"| {budget} | {chunk} | {chunks} | {seconds:.2f} s | {peak:.0f} MiB |")


if __name__ == "__main__":
    main()
