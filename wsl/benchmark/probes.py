"""What the benchmark measures itself on a subset of images: faithfulness, sanity and cost.

- Faithfulness (:mod:`wsl.metrics.faithfulness`): deletion / insertion AUC (RISE) and Average Drop /
  Increase in Confidence (Grad-CAM++) of the STORED maps (the maps the other scores judge) for every
  (image, labelled class) pair; the class probability is the sigmoid of the logit (multi-label head).
- Sanity (:mod:`wsl.metrics.sanity`): cascading randomisation of the top ``blocks`` of a copy of the model,
  maps recomputed single-scale, Spearman rank correlation of |map| with the trained model's maps.
- Cost (:mod:`wsl.benchmark.cost`): one forward pass + the method per image, timed after one warm-up
  image; peak memory added meanwhile.
- Identical maps: the stored maps of the faithfulness images, compared between methods.

Average Drop and Increase in Confidence are fractions here (the metric's percentages / 100). Every value
averaged over images has its bootstrap interval over those images (:mod:`wsl.benchmark.bootstrap`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsl import io
from wsl.benchmark.bootstrap import RESAMPLES, SEED, fields, mean_interval
from wsl.benchmark.cost import cost
from wsl.benchmark.styles import identical_groups
from wsl.cam import CAMExtractor
from wsl.data.transforms import to_tensor
from wsl.metrics.faithfulness import average_drop_increase, deletion_insertion
from wsl.metrics.sanity import cascading_randomization, flag, layer_blocks

log = logging.getLogger(__name__)
KINDS = ("drop", "increase")  # the per-pair fields of average_drop_increase
MAP_TOLERANCE = 2e-3  # float16 storage: about 1e-3 apart near 1
SANITY_MODES = {  # how the report names what a sanity step randomised
    "layers": "whole layers: weights, biases, normalisation parameters and statistics; Adebayo et al. 2018",
    "conv_linear": "Conv / Linear weights and biases only; normalisation left trained",
}


@dataclass
class Item:
    """One image of a subset: its id, the normalised tensor ``(1, 3, H, W)`` and its labelled classes."""

    id: str
    x: torch.Tensor
    classes: list[int]


def load_items(ds, indices: list[int], mean, std, device: torch.device) -> list[Item]:
    """The readable images among ``indices`` that have at least one labelled class."""
    items, labels = [], ds.labels()
    for i in indices:
        classes = np.flatnonzero(labels[i] > 0).tolist()
        try:
            image = ds.load_image(i)
        except OSError:
            continue
        if classes:
            items.append(Item(ds.ids[i], to_tensor(image, mean, std)[None].to(device), classes))
    return items


def faithfulness(model: nn.Module, items: list[Item], cams: Path, steps: int, resamples: int = RESAMPLES,
                 seed: int = SEED) -> dict:  # fmt: skip
    """Deletion / insertion AUC and Average Drop / Increase (fractions) over the (image, labelled class)
    pairs whose map is stored in the folder ``cams``, each with its bootstrap interval over the images
    (``<key>_low`` / ``<key>_high``); mean curves ``(x, y)``: ``deletion_curve``, ``insertion_curve``."""

    def score(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(x).float())

    runs: dict[str, list[dict]] = {"deletion": [], "insertion": []}
    per_image = []  # per image: pairs, then the sums of deletion AUC, insertion AUC, drop, increase
    for it in items:
        path = Path(cams) / f"{it.id}.npz"
        if not io.is_complete_npz(path):
            continue
        rec = io.load_cams(path)
        keep = [k for k, c in enumerate(rec["classes"].tolist()) if c in it.classes]
        if not keep:
            continue
        maps = torch.from_numpy(rec["maps"][keep]).to(it.x.device)
        cls = torch.as_tensor(rec["classes"][keep], device=it.x.device)
        images = it.x.expand(len(keep), -1, -1, -1)
        for mode, results in runs.items():
            results.append(deletion_insertion(score, images, cls, maps, mode, n_steps=steps))
        adi = average_drop_increase(score, images, cls, maps)  # Grad-CAM++ Sec. 5.1, fractions
        sums = [runs[m][-1]["auc"].double().sum() for m in runs] + [adi[k].double().sum() for k in KINDS]
        per_image.append([len(keep), *(float(v) for v in sums)])
    if not per_image:
        return {}
    table = np.array(per_image)
    out: dict = {"faithfulness_pairs": int(table[:, 0].sum())}
    x = torch.linspace(0, 1, steps + 1).tolist()
    for mode, results in runs.items():
        out[f"{mode}_curve"] = (x, torch.cat([r["curves"] for r in results]).mean(0).tolist())
    for j, key in enumerate(("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"), 1):
        out[key] = float(table[:, j].sum() / table[:, 0].sum())
        out |= fields(key, mean_interval(table[:, j], table[:, 0], resamples, seed))
    return out


def stored_maps(cams: Path, items: list[Item]) -> list[np.ndarray]:
    """The stored maps of ``items``' labelled classes in the folder ``cams``, each divided by its maximum,
    flat (float32): what :meth:`Probes.identical_maps` compares between methods."""
    out = []
    for it in items:
        path = Path(cams) / f"{it.id}.npz"
        if io.is_complete_npz(path):
            rec = io.load_cams(path)
            for k, c in enumerate(rec["classes"].tolist()):
                if c in it.classes:
                    m = np.asarray(rec["maps"][k], np.float32)
                    out.append((m / max(float(m.max()), 1e-12)).ravel())
    return out


def default_blocks(model: nn.Module, depth: int, mode: str = "conv_linear") -> list[str]:
    """The top ``depth`` blocks of the sanity cascade, top (logits) first: whole layers
    (:func:`~wsl.metrics.sanity.layer_blocks`, ``mode="layers"``) or the last convolution / linear
    layers (``"conv_linear"``)."""
    if mode == "layers":
        return layer_blocks(model)[:depth]
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return names[::-1][:depth]


def sanity(model: nn.Module, method: str, layer: str | list[str], items: list[Item], blocks: list[str],
           threshold: float, seed: int, resamples: int = RESAMPLES,
           mode: str = "layers") -> dict:  # fmt: skip
    """Mean Spearman (and SSIM) of |map| after randomising ``blocks[0..i]``, over all maps of ``items``;
    ``flagged`` when the mean Spearman after all ``blocks`` is above ``threshold``; the final Spearman's
    bootstrap interval over the images (``sanity_spearman_low`` / ``_high``)."""

    def map_fn(m: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        with CAMExtractor(m, method=method, target_layer=layer) as ext:
            return ext(x, classes)

    rho, ssim = [], []
    for it in items:
        classes = torch.tensor([it.classes], device=it.x.device)
        res = cascading_randomization(model, blocks, map_fn, it.x, classes, seed=seed, mode=mode)
        rho.append(np.asarray(res["spearman_per_map"], np.float64))
        ssim.append(res["ssim_per_map"])
    if not rho:
        return {}
    curve, ssim_curve = np.concatenate(rho, 1).mean(1), np.concatenate(ssim, 1).mean(1)
    last = [r[-1] for r in rho]  # per image: the Spearman of each map with every block randomised
    iv = mean_interval([v.sum() for v in last], [v.size for v in last], resamples, seed)
    return {
        "sanity_curve": curve.tolist(),
        "sanity_ssim": ssim_curve.tolist(),
        "sanity_spearman": float(curve[-1]),
        **fields("sanity_spearman", iv),
        "flagged": bool(flag({"spearman": curve}, threshold)),
    }


def probe(status: dict[str, str], name: str, fn: Callable[[], dict]) -> dict:
    """Run one measurement; a failure is logged and recorded in ``status[name]``, never raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a method a probe cannot handle is reported, not fatal
        log.warning("benchmark: %s failed: %s: %s", name, type(e).__name__, e)
        status[name] = f"failed: {type(e).__name__}: {e}"
        return {}


@dataclass
class Probes:
    """The model and the image subsets every method is probed on (empty subset: that probe is skipped)."""

    model: nn.Module
    device: torch.device
    layer: str | list[str]  # one target layer, or several (maps combined)
    blocks: list[str]
    faith: list[Item] = field(default_factory=list)
    sane: list[Item] = field(default_factory=list)
    costly: list[Item] = field(default_factory=list)
    steps: int = 20
    threshold: float = 0.5
    seed: int = 0  # of the randomised weights and of the bootstrap resamples
    resamples: int = RESAMPLES
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)  # method -> stored_maps()
    sanity_mode: str = "layers"  # what a cascade step randomises (wsl.metrics.sanity.MODES)

    def measure(self, method: str, cams: Path | None, status: dict[str, str]) -> dict:
        """Faithfulness of the stored maps in ``cams`` (None: skipped), sanity and cost of ``method``;
        a failing probe is recorded in ``status`` and leaves its columns n/a."""
        out: dict = {}
        if cams is not None and self.faith:
            args = (self.model, self.faith, cams, self.steps, self.resamples, self.seed)
            out |= probe(status, "faithfulness", lambda: faithfulness(*args))
            self.maps[method] = stored_maps(cams, self.faith)
        if self.sane:
            args = (self.model, method, self.layer, self.sane, self.blocks, self.threshold, self.seed,
                    self.resamples, self.sanity_mode)  # fmt: skip
            out |= probe(status, "sanity", lambda: sanity(*args))
        if self.costly:
            out |= probe(
                status, "cost", lambda: cost(self.model, method, self.layer, self.costly, self.device)
            )
        return out

    def notes(self) -> str:
        """What the probes were run on, for the report's legend."""
        return (
            f"Faithfulness on the first {len(self.faith)} images ({self.steps} steps), sanity on "
            f"{len(self.sane)} images randomising {', '.join(self.blocks)} cumulatively from the top "
            f"({SANITY_MODES[self.sanity_mode]}) "
            f"(flag: Spearman > {self.threshold}), "
            f"cost on {max(len(self.costly) - 1, 0)} images after one warm-up image."
        )

    def identical_maps(self, tol: float = MAP_TOLERANCE) -> dict:
        """The methods whose stored maps of the faithfulness images agree to ``tol`` (maps divided by their
        maximum; the maps are stored in float16): ``{"groups": [[m, ...], ...] (two or more each),
        "maps": how many maps were compared, "tolerance": tol}``."""

        def equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
            return len(a) == len(b) and all(
                x.shape == y.shape and float(np.abs(x - y).max(initial=0.0)) <= tol for x, y in zip(a, b)
            )

        kept = {m: v for m, v in self.maps.items() if v}
        groups = [g for g in identical_groups(kept, equal) if len(g) > 1]
        return {"groups": groups, "maps": max(map(len, kept.values()), default=0), "tolerance": tol}
