"""Statistics of a generated toy split (for the README and the sanity tests), read from its COCO JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from wsl import io


def toy_statistics(root: str | os.PathLike, split: str = "train") -> dict[str, Any]:
    """Objects per image, class frequencies, co-occurrence, visible-area fractions and image sizes.

    Args:
        root: the folder :func:`wsl.data.toy.ensure_toy` generated.
        split: ``train`` or ``val``.

    Returns a JSON-able dict: ``images``; ``objects``; ``objects_per_image`` (mean and histogram);
    per class (in class order) ``image_frequency`` (fraction of images containing it), ``instances`` and
    ``area_fraction`` (visible pixels / image pixels: mean, p10, median, p90); ``cooccurrence`` (C x C
    image counts, diagonal = images containing the class); ``pair`` (the conditional frequencies of the
    co-occurring pair boat / water); ``height`` and ``width`` ranges and the ``square_fraction``.
    """
    data = io.read_json(Path(root) / "annotations" / f"instances_{split}.json")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in cats]
    col = {c["id"]: k for k, c in enumerate(cats)}
    images = sorted(data["images"], key=lambda im: im["id"])
    row = {im["id"]: i for i, im in enumerate(images)}
    n, c = len(images), len(cats)
    counts = np.zeros((n, c), dtype=np.int64)
    fractions: list[list[float]] = [[] for _ in range(c)]
    pixels = np.array([im["height"] * im["width"] for im in images], dtype=np.float64)
    for a in data["annotations"]:
        i, k = row[a["image_id"]], col[a["category_id"]]
        counts[i, k] += 1
        fractions[k].append(a["area"] / pixels[i])
    present = counts > 0
    per_image = counts.sum(1)
    co = present.T.astype(np.int64) @ present.astype(np.int64)
    hs = [im["height"] for im in images]
    ws = [im["width"] for im in images]

    def pct(v: list[float]) -> dict[str, float]:
        q = np.percentile(v, [10, 50, 90]) if v else [float("nan")] * 3
        return {"mean": float(np.mean(v)) if v else float("nan"), "p10": q[0], "median": q[1], "p90": q[2]}

    stats: dict[str, Any] = {
        "split": split,
        "images": n,
        "objects": int(per_image.sum()),
        "objects_per_image": {
            "mean": float(per_image.mean()),
            "histogram": {int(m): int((per_image == m).sum()) for m in np.unique(per_image)},
        },
        "classes": names,
        "image_frequency": {nm: float(present[:, k].mean()) for k, nm in enumerate(names)},
        "instances": {nm: int(counts[:, k].sum()) for k, nm in enumerate(names)},
        "area_fraction": {
            nm: {k2: round(float(v), 4) for k2, v in pct(fractions[k]).items()} for k, nm in enumerate(names)
        },
        "cooccurrence": co.tolist(),
        "height": [min(hs), max(hs)],
        "width": [min(ws), max(ws)],
        "square_fraction": float(np.mean([h == w for h, w in zip(hs, ws)])),
    }
    if "boat" in names and "water" in names:
        b, w = names.index("boat"), names.index("water")
        stats["pair"] = {
            "P(water|boat)": float(co[b, w] / max(co[b, b], 1)),
            "P(boat|water)": float(co[b, w] / max(co[w, w], 1)),
        }
    return stats
