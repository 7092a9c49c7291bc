"""Time wsl's CAM engine against a plain forward pass and against the peers, on one model and one input.

    python scripts/bench_cams.py                        # ResNet-50, batch 8, 224 and 448 px, 2 threads
    python scripts/bench_cams.py --sizes 224 --repeats 3 --device cuda
    python scripts/bench_cams.py --rows multilayer thousand --ml-size 128 --peer-classes 10   # quick

All five strategies run on the same ResNet-50 (random weights, 20 classes), the same batch and the same
thread count, interleaved in each repeat (so that a change of machine load hits them alike); the table
gives medians and the three ratios the engine is held to:

    (a) plain inference forward (torch.inference_mode)
    (b) wsl Grad-CAM, all C = 20 classes of every image
    (c) wsl Grad-CAM, K = 3 classes per image (different per image)
    (d) pytorch-grad-cam GradCAM, one call per class column for the same K
    (e) torchcam GradCAM, one forward and K retain_graph calls
    targets: (b) <= 1.15 (a);  (d) / (c) >= 8;  (c) <= 1.05 (e)

Two more rows (``--rows``):

- ``multilayer``: the seed document's DeepLabV3-ResNet50 recipe (random weights, 21 classes): Grad-CAM of
  ``backbone.layer1..layer4`` together, the score of a class summed over its argmax mask, K classes per
  image (``--ml-classes``, the seed explains one); wsl's one call (one forward, one batched gradient
  w.r.t. the four layers and the K classes) against pytorch-grad-cam's call with four target layers, one
  per class, interleaved, medians; the largest difference of the two maps (wsl with
  ``combine_size="input"``, then min-max) is printed too. Target: >= 2x.
- ``thousand``: all 1000 classes of an ImageNet-size ResNet (random weights) for one batch: wsl with its
  class chunks under ``--max-grad-mb`` (default: automatic from free memory) against pytorch-grad-cam
  looping over the classes. Each runs once, in a fresh process, which also measures its peak memory
  growth (resident set size on the CPU; ``max_memory_allocated`` on CUDA) over the model and one
  single-class call (the baseline: one-time allocations are not the class count's).
  pytorch-grad-cam is timed on ``--peer-classes`` classes and its time scaled to 1000 (each class is
  one independent call, so the scaling is linear); its memory does not grow with the class count.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget
from torchcam.methods import GradCAM as TorchcamGradCAM

from wsl.cam import CAMExtractor
from wsl.cam.layers import scale_maps

log = logging.getLogger("bench_cams")

NUM_CLASSES = 20
ROWS = ("classes", "multilayer", "thousand")
DEEPLAB_LAYERS = [f"backbone.layer{i}" for i in range(1, 5)]
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
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS, help="which tables to make")
    p.add_argument("--ml-size", type=int, default=224, help="multilayer row: input size (px)")
    p.add_argument("--ml-batch", type=int, default=2, help="multilayer row: images")
    p.add_argument("--ml-classes", type=int, nargs="+", default=[1, 2], help="multilayer: classes per image")
    p.add_argument("--big-arch", default="resnet50", help="thousand row: torchvision ResNet")
    p.add_argument("--big-size", type=int, default=224, help="thousand row: input size (px)")
    p.add_argument("--big-batch", type=int, default=1, help="thousand row: images")
    p.add_argument("--max-grad-mb", type=float, default=None, help="thousand row: wsl's budget (MiB)")
    p.add_argument("--peer-classes", type=int, default=20, help="thousand row: classes timed for the peer")
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


class OutOnly(torch.nn.Module):
    """DeepLab's dict output reduced to its ``"out"`` tensor (pytorch-grad-cam's tutorial)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def multilayer(args: argparse.Namespace, device: torch.device) -> str:
    """The DeepLabV3 layer1..4 rows (one per ``--ml-classes`` K): medians of wsl (one call for the K classes
    of every image) and pytorch-grad-cam (one call per class column), their ratio, the maps' difference."""
    torch.manual_seed(args.seed)
    model = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21
    ).eval().to(device)  # fmt: skip
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.ml_batch, 3, args.ml_size, args.ml_size, generator=gen).to(device)
    with torch.inference_mode():
        pred = model(x)["out"].argmax(1)
    # per image, its most frequent predicted classes (so that every argmax mask is non-empty)
    ranked = torch.stack([torch.bincount(p.flatten(), minlength=21).argsort(descending=True) for p in pred])
    ext = CAMExtractor(model, "gradcam", DEEPLAB_LAYERS, combine_size="input")
    layers = [model.get_submodule(n) for n in DEEPLAB_LAYERS]
    lines = [
        f"DeepLabV3-ResNet50 (random weights, 21 classes), Grad-CAM of layer1..layer4 together, the class "
        f"score summed over its argmax mask, batch {args.ml_batch}, {args.ml_size} px, device {device}, "
        f"{args.threads} threads, medians of {args.repeats}",
        "",
        "| classes per image | wsl, one call | pytorch-grad-cam, one call per class | pgc / wsl (>= 2) "
        "| max abs difference |",
        "|---|---|---|---|---|",
    ]
    for k in args.ml_classes:
        cls = ranked[:, :k].to(device)

        def ours(cls=cls) -> torch.Tensor:
            return ext(x, cls)

        def peer(cls=cls) -> np.ndarray:
            with PgcGradCAM(model=OutOnly(model), target_layers=layers) as cam:
                return np.stack([
                    cam(input_tensor=x, targets=[
                        SemanticSegmentationTarget(int(c), (pred[b] == c).float().cpu().numpy())
                        for b, c in enumerate(col)
                    ])
                    for col in cls.T
                ], 1)  # fmt: skip

        times: dict[str, list[float]] = {"wsl": [], "pgc": []}
        outs = {}
        for rep in range(args.repeats + 1):
            for name, fn in (("wsl", ours), ("pgc", peer)):
                sync(device)
                start = time.perf_counter()
                outs[name] = fn()
                sync(device)
                if rep > 0:
                    times[name].append(time.perf_counter() - start)
            log.info("multilayer, %d classes: round %d/%d done", k, rep, args.repeats)
        diff = float((scale_maps(outs["wsl"].float()).cpu() - torch.from_numpy(outs["pgc"])).abs().max())
        t = {name: statistics.median(v) for name, v in times.items()}
        ratio = t["pgc"] / t["wsl"]
        lines.append(
            f"| {k} | {t['wsl']:.3f} s | {t['pgc']:.3f} s | {ratio:.2f} {'ok' if ratio >= 2 else 'MISSED'} "
            f"| {diff:.1e} |"
        )
    return "\n".join(lines)


def peak_rss() -> int:
    """This process's peak resident memory in bytes (``VmHWM``; ``ru_maxrss`` would carry the parent's
    peak over ``exec``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _peak_job(job: dict, conn) -> None:
    """In a fresh process: build the job's model and input, run it once; send (seconds, peak MiB, chunk)."""
    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    torch.manual_seed(0)
    classes = job.get("num_classes", 1000)
    model = getattr(torchvision.models, job["arch"])(weights=None, num_classes=classes).eval().to(device)
    x = torch.randn(job["batch"], 3, job["size"], job["size"], generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    # the baseline: the model, one forward pass and one single-class call (one-time allocations of autograd
    # and of the allocator); what the job adds on top is what its class count costs
    if job["kind"] == "wsl":
        CAMExtractor(model, "gradcam", "layer4")(x, torch.zeros(len(x), 1, dtype=torch.long, device=device))
    else:
        with PgcGradCAM(model=model, target_layers=[model.layer4]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * job["batch"])
    chunk = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.max_memory_allocated(device)
    else:
        base = peak_rss()
    start = time.perf_counter()
    if job["kind"] == "wsl":
        ext = CAMExtractor(model, "gradcam", "layer4", max_grad_mb=job["max_grad_mb"])
        maps = ext(x)
        assert maps.shape[:2] == (job["batch"], classes)
        chunk = ext.last_chunk
    else:
        with PgcGradCAM(model=model, target_layers=[model.layer4]) as cam:
            for c in range(job["classes"]):
                cam(input_tensor=x, targets=[ClassifierOutputTarget(c)] * job["batch"])
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = peak_rss() - base
    conn.send((seconds, peak / 2**20, chunk))
    conn.close()


def peak_run(job: dict) -> tuple[float, float, int | None]:
    """:func:`_peak_job` in a fresh (spawned) process: ``(seconds, peak MiB growth, classes per chunk)``."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_peak_job, args=(job, child))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    return result


def thousand(args: argparse.Namespace, device: torch.device) -> str:
    """The 1000-class row: wsl (chunked) against pytorch-grad-cam looping over the classes."""
    base = {"arch": args.big_arch, "size": args.big_size, "batch": args.big_batch, "threads": args.threads,
            "device": str(device)}  # fmt: skip
    ws, wm, chunk = peak_run({**base, "kind": "wsl", "max_grad_mb": args.max_grad_mb})
    log.info("thousand: wsl done in %.2f s", ws)
    n = max(1, min(1000, args.peer_classes))
    ps, pm, _ = peak_run({**base, "kind": "pgc", "classes": n})
    peer = ps * 1000 / n
    budget = "auto" if args.max_grad_mb is None else f"{args.max_grad_mb:g} MiB"
    return "\n".join([
        f"{args.big_arch} (random weights, 1000 classes), all classes of a batch of {args.big_batch} at "
        f"{args.big_size} px, Grad-CAM at layer4, device {device}, {args.threads} threads, one run each",
        "",
        "| strategy | time | peak memory growth | classes per chunk |",
        "|---|---|---|---|",
        f"| wsl, chunks under the budget ({budget}) | {ws:.2f} s | {wm:.0f} MiB | {chunk} |",
        f"| pytorch-grad-cam, one call per class ({n} timed, x {1000 / n:g}) | {peer:.1f} s "
        f"| {pm:.0f} MiB | 1 |",
        f"| ratio pgc / wsl | {peer / ws:.1f} | | |",
    ])  # fmt: skip


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = torch.device("cpu" if name == "auto" else name)
    if "classes" in args.rows:
        torch.manual_seed(args.seed)
        model = torchvision.models.resnet50(weights=None, num_classes=NUM_CLASSES).eval().to(device)
        results = {size: bench(model, size, args, device) for size in args.sizes}
        print(table(results, args, device))
    if "multilayer" in args.rows:
        print("\n" + multilayer(args, device))
    if "thousand" in args.rows:
        print("\n" + thousand(args, device))


if __name__ == "__main__":
    main()
