"""Time wsolevaluation's MaxBoxAcc loop against ``wsl.metrics.max_box_acc`` on the same maps.

The reference is the per-threshold loop of wsolevaluation (Choe et al., CVPR 2020) as described
in ``shared/reference/evaluation.md``: for every threshold, ``cv2.threshold`` + ``findContours`` +
``boundingRect`` + IoU. Both sides get the same maps, GT boxes and thresholds, and their curves are
compared (they must be identical). Maps are synthetic, 224 x 224 by default:

* ``cam``: CAM-like, ReLU of 1-3 Gaussian blobs plus a little noise on a 7 x 7 grid, upsampled
  bilinearly (what a ResNet CAM looks like);
* ``grid``: a uniformly random 7 x 7 grid upsampled: many local maxima and minima (harder).

Usage: ``python scripts/bench_maxboxacc.py [--n-maps 1000] [--n-thresholds 1000] [--kind cam]
[--ref-maps N]``. With ``--ref-maps`` below ``--n-maps`` the reference runs on the first N maps
only and its time is extrapolated linearly (the output says so). Both wall-clock and process
CPU time are reported: on a shared machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from wsl.metrics.wsol import MaxBoxAccumulator


def make_map(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    if kind == "grid":
        return cv2.resize(rng.random((7, 7)).astype(np.float32), (size, size))
    yy, xx = np.mgrid[:7, :7].astype(np.float32)
    m = np.zeros((7, 7), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, 6, 2)
        s = rng.uniform(0.6, 2.0)
        m += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    m += 0.05 * rng.random((7, 7)).astype(np.float32)
    return cv2.resize(np.maximum(m - 0.1, 0), (size, size))


def make_boxes(rng: np.random.Generator, size: int) -> np.ndarray:
    n = int(rng.integers(1, 4))
    x0, y0 = rng.integers(0, size // 2, n), rng.integers(0, size // 2, n)
    x1 = np.minimum(x0 + rng.integers(20, size // 2, n), size - 1)
    y1 = np.minimum(y0 + rng.integers(20, size // 2, n), size - 1)
    return np.stack([x0, y0, x1, y1], 1)


def reference_hits(maps, gts, taus, deltas, multi_contour) -> np.ndarray:
    """wsolevaluation's loop, written from evaluation.md; returns hit counts (n_deltas, T)."""
    hits = np.zeros((len(deltas), len(taus)), dtype=np.int64)
    for cam, gt in zip(maps, gts):
        cam = cam.copy()
        if np.isnan(cam).any() or cam.min() == cam.max():
            cam = np.zeros_like(cam)
        else:
            cam -= cam.min()
            cam /= cam.max()
        height, width = cam.shape
        image = np.expand_dims((cam * 255).astype(np.uint8), 2)
        boxes_per_tau = []
        for tau in taus:
            _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
            if len(contours) == 0:
                boxes_per_tau.append(np.array([[0, 0, 0, 0]]))
                continue
            if not multi_contour:
                contours = [max(contours, key=cv2.contourArea)]
            rects = [cv2.boundingRect(c) for c in contours]
            boxes_per_tau.append(
                np.array([[x, y, min(x + w, width - 1), min(y + h, height - 1)] for x, y, w, h in rects])
            )
        # like wsolevaluation: one IoU over all boxes of all thresholds, then the best per threshold
        boxes = np.concatenate(boxes_per_tau)
        ix = np.minimum(boxes[:, None, 2], gt[None, :, 2]) - np.maximum(boxes[:, None, 0], gt[None, :, 0]) + 1
        iy = np.minimum(boxes[:, None, 3], gt[None, :, 3]) - np.maximum(boxes[:, None, 1], gt[None, :, 1]) + 1
        inter = np.maximum(ix, 0) * np.maximum(iy, 0)
        area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
        area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
        per_box = (inter / (area_b[:, None] + area_g[None, :] - inter)).max(1)
        starts = np.cumsum([0] + [len(b) for b in boxes_per_tau[:-1]])
        best = np.maximum.reduceat(per_box, starts)
        for k, d in enumerate(deltas):
            hits[k] += best >= d
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-maps", type=int, default=1000)
    parser.add_argument("--n-thresholds", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--kind", choices=["cam", "grid"], default="cam")
    parser.add_argument("--ref-maps", type=int, default=None, help="run the reference on this many maps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    maps = [make_map(rng, args.kind, args.size) for _ in range(args.n_maps)]
    gts = [make_boxes(rng, args.size) for _ in range(args.n_maps)]
    taus = np.arange(args.n_thresholds) / args.n_thresholds  # = np.arange(0, 1, 1 / n)
    n_ref = min(args.ref_maps or args.n_maps, args.n_maps)
    print(f"{args.n_maps} maps {args.size}x{args.size} ({args.kind}), {args.n_thresholds} thresholds")
    rows = []
    for name, deltas, multi in (("MaxBoxAcc (V1)", (0.5,), False), ("MaxBoxAccV2", (0.3, 0.5, 0.7), True)):
        w0, c0 = time.perf_counter(), time.process_time()
        ref = reference_hits(maps[:n_ref], gts[:n_ref], taus, deltas, multi)
        scale = args.n_maps / n_ref
        ref_times = ((time.perf_counter() - w0) * scale, (time.process_time() - c0) * scale)
        acc = MaxBoxAccumulator(taus, deltas, multi_contour=multi)
        w0, c0 = time.perf_counter(), time.process_time()
        for m, g in zip(maps, gts):
            acc.update(m, g)
            if acc.count == n_ref:
                same = np.array_equal(acc.hits, ref)
        wsl_times = (time.perf_counter() - w0, time.process_time() - c0)
        rows.append((name, ref_times, wsl_times, same, acc.compute().max_box_acc))
    note = "" if n_ref == args.n_maps else f", extrapolated from {n_ref} maps"
    head = f"reference loop (wall / CPU{note})"
    print(f"\n| metric | {head} | wsl (wall / CPU) | speed-up wall / CPU | identical | value (%) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (rw, rc), (ww, wc), same, value in rows:
        per = 1e3 / args.n_maps
        print(
            f"| {name} | {rw:.1f} s / {rc:.1f} s ({rc * per:.1f} ms/map CPU) | {ww:.1f} s / {wc:.1f} s "
            f"({wc * per:.1f} ms/map CPU) | {rw / ww:.1f}x / {rc / wc:.1f}x | {same} | {100 * value:.2f} |"
        )


if __name__ == "__main__":
    main()
