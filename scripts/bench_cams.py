"""Time wsl's CAM engine against a plain forward pass and against the peers, on one model and one input.

    python scripts/bench_cams.py                        # ResNet-50, batch 8, 224 and 448 px, 2 threads
    python scripts/bench_cams.py --sizes 224 --repeats 3 --device cuda

All five strategies run on the same ResNet-50 (random weights, 20 classes), the same batch and the same
thread count, interleaved in each repeat (so that a change of machine load hits them alike); the table
gives medians and the three ratios the engine is held to:

    (a) plain inference forward (torch.inference_mode)
    (b) wsl Grad-CAM, all C = 20 classes of every image
    (c) wsl Grad-CAM, K = 3 classes per image (different per image)
    (d) pytorch-grad-cam GradCAM, one call per class column for the same K
    (e) torchcam GradCAM, one forward and K retain_graph calls
    targets: (b) <= 1.15 (a);  (d) / (c) >= 8;  (c) <= 1.05 (e)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchcam.methods import GradCAM as TorchcamGradCAM

from wsl.cam import CAMExtractor

log = logging.getLogger("bench_cams")

NUM_CLASSES = 20
STRATEGIES = ("a", "b", "c", "d", "e")
TARGETS = {"(b)/(a)": ("<=", 1.15), "(d)/(c)": (">=", 8.0), "(c)/(e)": ("<=", 1.05)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 448], help="square input sizes (px)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--k", type=int, default=3, help="classes per image for (c), (d), (e)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (after one warm-up); medians")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def strategies(
    model: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor
) -> dict[str, Callable[[], object]]:
    """The five timed callables (see the module docstring)."""
    ext = CAMExtractor(model, "gradcam", "layer4")
    k = classes.shape[1]

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    def pytorch_grad_cam() -> object:
        with PgcGradCAM(model=model, target_layers=[model.layer4]) as cam:
            return [
                cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in col])
                for col in classes.T
            ]

    def torchcam() -> object:
        with TorchcamGradCAM(model, "layer4", input_shape=tuple(x.shape[1:])) as cam:
            scores = model(x)
            return [
                cam(class_idx=classes[:, j].tolist(), scores=scores, normalized=False, retain_graph=j < k - 1)
                for j in range(k)
            ]

    return {
        "a": forward,
        "b": lambda: ext(x),
        "c": lambda: ext(x, classes),
        "d": pytorch_grad_cam,
        "e": torchcam,
    }


def bench(
    model: torch.nn.Module, size: int, args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """Median seconds of each strategy at ``size`` px, interleaved over ``args.repeats`` rounds."""
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, size, size, generator=gen).to(device)
    classes = torch.stack([torch.randperm(NUM_CLASSES, generator=gen)[: args.k] for _ in range(args.batch)])
    runs = strategies(model, x, classes.to(device))
    times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    for rep in range(args.repeats + 1):  # round 0 is the warm-up
        for name in STRATEGIES:
            sync(device)
            start = time.perf_counter()
            runs[name]()
            sync(device)
            if rep > 0:
                times[name].append(time.perf_counter() - start)
        log.info("%d px: round %d/%d done", size, rep, args.repeats)
    return {name: statistics.median(t) for name, t in times.items()}


def table(results: dict[int, dict[str, float]], args: argparse.Namespace, device: torch.device) -> str:
    """A markdown table of medians and ratios, each ratio marked against its target."""
    ratio_names = list(TARGETS)
    head = ["size", "(a) forward", "(b) wsl all C", "(c) wsl K", "(d) pytorch-grad-cam", "(e) torchcam"]
    head += [f"{r} ({op} {v:g})" for r, (op, v) in TARGETS.items()]
    lines = [
        f"ResNet-50 (random weights, {NUM_CLASSES} classes), batch {args.batch}, K = {args.k}, "
        f"device {device}, {args.threads} threads, medians of {args.repeats}, torch {torch.__version__}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for size, t in results.items():
        ratios = {"(b)/(a)": t["b"] / t["a"], "(d)/(c)": t["d"] / t["c"], "(c)/(e)": t["c"] / t["e"]}
        cells = [f"{size} px"] + [f"{t[s]:.3f} s" for s in STRATEGIES]
        for r in ratio_names:
            op, target = TARGETS[r]
            ok = ratios[r] <= target if op == "<=" else ratios[r] >= target
            cells.append(f"{ratios[r]:.2f} {'ok' if ok else 'MISSED'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = torch.device("cpu" if name == "auto" else name)
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet50(weights=None, num_classes=NUM_CLASSES).eval().to(device)
    results = {size: bench(model, size, args, device) for size in args.sizes}
    print(table(results, args, device))


if __name__ == "__main__":
    main()
