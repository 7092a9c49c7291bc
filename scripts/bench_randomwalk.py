"""Cost of stage=randomwalk's per-image work on a CPU: the sparse random walk of wsl.refine against IRN's
dense construction (``misc/indexing.py``: an N x N transition matrix squared ``exp_times`` times).

    python scripts/bench_randomwalk.py [--threads 1] [--repeats 3]

Prints, for a VOC-size image (375 x 500 -> a 94 x 125 stride-4 grid, 11,750 cells) and the toy size (160 x
160 -> 40 x 40): the time to build the transition matrix, the 256 sparse steps, rw_scores, and the network
(small_cnn and, for the VOC size, an untrained ResNet-50 head; both with the flip); on the toy grid, the
dense reference and the ratio. The dense reference is not run on the VOC grid: its matrix alone is
11,750^2 floats (552 MB) and each of the 8 squarings costs 2 * 11,750^3 = 3.2 TFLOP.
"""

from __future__ import annotations

import argparse
import time

import torch

from wsl.models.classifier import build_classifier
from wsl.refine import AffinityNet, grid_size, offsets, random_walk, rw_scores, transition_matrix
from wsl.refine.randomwalk import propagate


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def dense_walk(
    maps: torch.Tensor, aff: torch.Tensor, radius: int, beta: float, exp_times: int
) -> torch.Tensor:
    """IRN's dense route: the dense transition matrix (from the sparse one) and its repeated squaring."""
    k, h, w = maps.shape
    t = transition_matrix(aff, radius, beta).to_dense().T.contiguous()  # column-normalised, as IRN
    for _ in range(exp_times):
        t = t @ t
    return (maps.reshape(k, -1) @ t).reshape(k, h, w)


def net_time(arch: str, image: torch.Tensor, repeats: int) -> float:
    """Seconds of the affinity network's forward passes on the image and its mirror (no gradients)."""
    net = AffinityNet(build_classifier(arch, 20)).eval()
    with torch.no_grad():
        return best(lambda: (net(image), net(image.flip(-1))), repeats)


def bench_size(name: str, h: int, w: int, repeats: int, radius: int, beta: float, exp_times: int, k: int):
    """Time one image size (prints one block)."""
    gh, gw = grid_size((h, w))
    aff = torch.rand(len(offsets(radius)), gh, gw) * 0.5 + 0.5
    maps = torch.rand(k, gh, gw)
    transition_matrix(aff, radius, beta)  # the grid's sparsity pattern is cached once per size
    t_build = best(lambda: transition_matrix(aff, radius, beta), repeats)
    tm = transition_matrix(aff, radius, beta)
    x = maps.reshape(k, -1).T.contiguous()
    t_walk = best(lambda: propagate(tm, x, 2**exp_times), repeats)
    walked = random_walk(maps, aff, radius, beta, exp_times)
    t_scores = best(lambda: rw_scores(walked, (h, w), 0.25), repeats)
    print(f"{name}: grid {gh}x{gw} ({gh * gw} cells, {tm.values().numel()} non-zeros): transition "
          f"{t_build * 1e3:.1f} ms, walk {t_walk * 1e3:.1f} ms, scores {t_scores * 1e3:.1f} ms, "
          f"total {(t_build + t_walk + t_scores) * 1e3:.1f} ms")  # fmt: skip
    image = torch.randn(1, 3, h, w)
    archs = ("small_cnn", "resnet50") if name.startswith("VOC") else ("small_cnn",)
    for arch in archs:
        print(f"  network {arch} (image + flip): {net_time(arch, image, repeats) * 1e3:.0f} ms")
    if gh * gw <= 2000:
        t_dense = best(lambda: dense_walk(maps, aff, radius, beta, exp_times), repeats)
        err = (dense_walk(maps.double(), aff.double(), radius, beta, exp_times)
               - random_walk(maps.double(), aff.double(), radius, beta, exp_times)).abs().max()  # fmt: skip
        print(f"  IRN's dense route: {t_dense * 1e3:.1f} ms; sparse / dense time "
              f"{(t_build + t_walk) / t_dense:.3f}; max difference {err:.1e}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    radius, beta, exp_times, k = 5, 10.0, 8, 3
    print(f"threads {args.threads}, radius {radius}, beta {beta}, {2**exp_times} steps, {k} class maps")
    for name, (h, w) in (("VOC 375x500", (375, 500)), ("toy 160x160", (160, 160))):
        bench_size(name, h, w, args.repeats, radius, beta, exp_times, k)


if __name__ == "__main__":
    main()
