"""The whole WSSS loop of a run in one table: CAM (train) -> seeds -> pseudo-labels -> final network (val).

Every WSSS paper reports these steps side by side (SEC, PSA, IRN; shared/reference/wsss-loop.md): the
CAM masks and seeds scored on the training images, the pseudo-labels of each refiner on the training
images, and the segmentation network trained on them scored on val. :func:`loop_figures` reads what the
stages of one run wrote (their ``metrics.json`` / ``manifest.json``, through :class:`wsl.layout.RunLayout`);
:func:`loop_markdown` puts one or several runs (mean ± sample std over the runs) beside the published VOC
2012 figures and the command lines that reproduce each step on VOC. A step a run has not made is "n/a".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsl import io
from wsl.layout import RunLayout

__all__ = ["LOOP_ROWS", "LoopRow", "loop_figures", "loop_markdown", "save_loop"]


@dataclass(frozen=True)
class LoopRow:
    """One step of the loop: its key in :func:`loop_figures`, what it is, the split it is scored on, the
    published VOC 2012 mIoU of SEC / PSA / IRN (percent, None: not reported) and the VOC command line."""

    key: str
    step: str
    split: str
    published: tuple[float | None, float | None, float | None]
    voc: str


_V = "python -m wsl.run +experiment=voc_sec"  # SEC's VOC setting (its own run folder, voc_sec)
_I = "python -m wsl.run +experiment=voc_irn"  # IRN's (run folder voc_irn)
_FINAL = "segmodel=deeplab_resnet101 segmodel.pretrained=true"
_EVAL = "stage=eval stage.split=val stage.task=segmentation"
_ROWS = [  # key, step, split, published (SEC, PSA, IRN), VOC command line
    ("cams", "CAM masks (bg 0.15)", "train", (None, 48.0, 48.3), f"{_I} stage=cams stage.split=train"),
    ("seeds", "seeds (labelled pixels)", "train", (None, None, None), f"{_V} stage=seeds"),
    ("seeds_irn", "seeds, IRN confident regions", "train", (None, None, None), f"{_I} stage=affinity"),
    ("labels_sec", "pseudo-labels, SEC", "train", (None, None, None), f"{_V} stage=sec && {_V} stage=labels"),
    ("labels_randomwalk", "pseudo-labels, random walk", "train", (None, 61.0, 66.5),
     f"{_I} stage=affinity && {_I} stage=randomwalk"),
    ("net_sec", "SEC network", "val", (None, None, None), f"{_V} {_EVAL}"),
    ("net_sec_crf", "SEC network + CRF", "val", (50.7, None, None), f"{_V} {_EVAL}"),
    ("net_segtrain_sec", "final network on SEC labels", "val", (None, None, None),
     f"{_V} stage=segtrain stage.labels=sec {_FINAL}"),
    ("net_segtrain_sec_crf", "final network on SEC labels + CRF", "val", (None, None, None),
     f"{_V} {_EVAL} {_FINAL}"),
    ("net_segtrain_randomwalk", "final network on random-walk labels", "val", (None, 61.7, 63.5),
     f"{_I} stage=segtrain stage.labels=randomwalk {_FINAL}"),
    ("net_segtrain_randomwalk_crf", "final network on random-walk labels + CRF", "val", (None, None, None),
     f"{_I} {_EVAL} {_FINAL}"),
]  # fmt: skip
LOOP_ROWS: tuple[LoopRow, ...] = tuple(LoopRow(*row) for row in _ROWS)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return io.read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _get(d: dict[str, Any] | None, *keys: str) -> float | None:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None


def loop_figures(
    layout: RunLayout, cam: str, train: str = "train", val: str = "val"
) -> dict[str, float | None]:
    """The figures of :data:`LOOP_ROWS` for one run (fractions; None where the step has not been scored).

    CAM masks: stage=eval's ``<train>/segmentation`` (else stage=cams' manifest); seeds: stage=eval's, else
    stage=seeds' ``metrics.json``; IRN's confident regions: stage=affinity's ``metrics.json``
    (``confident_seeds.miou``); pseudo-labels: stage=labels' and stage=randomwalk's ``metrics.json``;
    networks: stage=eval's ``<val>/network/<name>/metrics.json`` (``miou`` and ``miou_crf``).
    """
    seg = _read(RunLayout.metrics(layout.eval(cam, train, "segmentation")))
    cams = _get(seg, "miou") if seg else _get(_read(RunLayout.manifest(layout.cams(cam, train))), "cam_miou")
    seeds = _get(seg, "seeds", "miou")
    if seeds is None:
        seeds = _get(_read(RunLayout.metrics(layout.seeds(cam, train))), "seeds", "miou")
    aff = _read(RunLayout.metrics(layout.affinity(cam)))
    out = {"cams": cams, "seeds": seeds, "seeds_irn": _get(aff, "confident_seeds", "miou")}
    for refiner in ("sec", "randomwalk"):
        out[f"labels_{refiner}"] = _get(
            _read(RunLayout.metrics(layout.pseudo_labels(refiner, cam, train))), "miou"
        )
    for key, name in (
        ("net_sec", "sec"),
        ("net_segtrain_sec", "segtrain-sec"),
        ("net_segtrain_randomwalk", "segtrain-randomwalk"),
    ):
        net = _read(RunLayout.metrics(layout.eval_network(cam, val, name)))
        out[key], out[f"{key}_crf"] = _get(net, "miou"), _get(net, "miou_crf")
    return out


def _spread(values: Sequence[float | None]) -> str:
    vals = [100 * v for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f} (n={len(vals)})"


def loop_markdown(runs: Sequence[dict[str, float | None]], title: str = "The WSSS loop") -> str:
    """The loop table (percent): each step's mean ± sample std over ``runs`` (figures of
    :func:`loop_figures`), the published VOC 2012 figures and the VOC command line."""
    head = [
        f"### {title}",
        "",
        f"| step | split | {'mean ± std' if len(runs) > 1 else 'this run'} | SEC (VOC) | PSA (VOC) "
        "| IRN (VOC) | VOC command |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = []
    for r in LOOP_ROWS:
        pub = " | ".join("-" if v is None else f"{v:.1f}" for v in r.published)
        rows.append(
            f"| {r.step} | {r.split} | {_spread([run.get(r.key) for run in runs])} | {pub} | `{r.voc}` |"
        )
    notes = (
        "\nPublished: VOC 2012 mIoU (%) from the papers (SEC: VGG-16 DeepLab-LargeFOV, test-time CRF; "
        "PSA: ResNet-38; IRN: ResNet-50 CAMs, DeepLab-v2 ResNet-101 final network), for orientation "
        "only: the toy data is not VOC. train = the training images with masks, val = the val split.\n"
    )
    return "\n".join(head + rows) + "\n" + notes


def save_loop(folder: str | Path, figures: dict[str, float | None], run: str = "") -> None:
    """Write ``loop.json`` (fractions) and ``loop.md`` (the table of this one run) into ``folder``."""
    folder = Path(folder)
    io.write_json(folder / "loop.json", {"units": "fractions in [0, 1]", "run": run, "figures": figures})
    io.write_text(folder / "loop.md", loop_markdown([figures], f"The WSSS loop of {run or 'this run'}"))
