"""stage=sec (a few iterations on the toy data) and stage=labels on its network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl import io
from wsl.errors import UserError
from wsl.segmentation.sec import schedule
from wsl.stages import labels as labels_stage
from wsl.stages import sec as sec_stage
from wsl.stages.common import build_dataset, layout, load_segmodel

FAST = [
    "segmodel.input_size=64",
    "segmodel.build.width=8",
    "stage.batch_size=4",
    "stage.crf_processes=0",
    "num_workers=0",
    "stage.log_every=1",
]


def _write_seeds(cfg) -> None:
    """Seeds from the GT masks with 30 % of the pixels unlabelled (a stand-in for stage=seeds)."""
    ds = build_dataset(cfg, "train", with_masks=True)
    folder = layout(cfg).seeds(cfg.cam.name, "train")
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        seeds = ds.load_mask(i).copy()
        seeds[rng.random(seeds.shape) < 0.3] = 255
        io.write_label_png(folder / f"{ds.ids[i]}.png", seeds)
    io.write_json(folder / "manifest.json", {})


@pytest.fixture
def trained(tmp_path, compose):
    """Seeds and a 10-iteration SEC run (in two halves: 5, then resumed to 10) of run `t`."""

    def cfg(*overrides):
        return compose(["stage=sec", "run=t", *FAST, *overrides])

    _write_seeds(cfg())
    half = sec_stage.run(cfg("stage.iterations=5", "stage.checkpoint_every=5"))
    full = sec_stage.run(cfg("stage.iterations=10", "stage.checkpoint_every=5"))
    return cfg, half, full, tmp_path


def test_schedule_is_resumable():
    whole = schedule(10, 3, 0, 7, seed=0, rank=0, world=1)
    assert len(whole) == 7 and all(len(b) == 3 for b in whole)
    assert schedule(10, 3, 4, 7, seed=0, rank=0, world=1) == whole[4:]
    ranks = [schedule(12, 2, 0, 3, seed=0, rank=r, world=2) for r in (0, 1)]
    assert not set(sum(ranks[0], [])) & set(sum(ranks[1], []))


@pytest.mark.slow
def test_sec_trains_resumes_and_labels(trained, compose):
    cfg, half, full, root = trained
    out = layout(cfg()).sec(cfg().cam.name)
    history = io.read_json(out / "history.json")
    assert [h["iteration"] for h in history] == list(range(1, 11))
    assert half["iterations"] == 5 and full["iterations"] == 10
    # The resumed run continued from iteration 5: an uninterrupted run gives the same losses.
    straight = compose(["stage=sec", "run=u", *FAST, "stage.iterations=10"])
    _write_seeds(straight)
    ref = sec_stage.run(straight)
    ref_history = io.read_json(layout(straight).sec(cfg().cam.name) / "history.json")
    for a, b in zip(history, ref_history):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
    assert ref["iterations"] == 10
    # The losses go down over the first iterations; each term is finite and the constrain loss positive.
    first, last = np.mean([h["total"] for h in history[:3]]), np.mean([h["total"] for h in history[-3:]])
    assert last < first
    assert all(h["constrain"] > 0 and np.isfinite(h["seed"]) for h in history)
    assert (out / "loss.png").is_file() and (out / "final.pt").is_file()
    state = io.load_checkpoint(out / "last.pt")
    assert state["iteration"] == 10 and state["grid"] == [8, 8]
    assert set(full["seconds_per_iteration"]) == {"data", "forward", "crf", "backward"}
    # A finished run is left alone.
    assert sec_stage.run(cfg("stage.iterations=10"))["iterations"] == 10

    # stage=labels on this network: PNGs, the list file, mIoU against the masks.
    lab = compose(
        [
            "stage=labels",
            "run=t",
            *FAST[:2],
            "stage.crf_processes=0",
            "stage.limit=4",
            "stage.scales=[1.0,0.5]",
            "stage.flip=true",
        ]
    )
    m = labels_stage.run(lab)
    assert (m["done"], m["failed"], m["listed"]) == (4, 0, 4)
    folder = layout(lab).labels(lab.cam.name, "train")
    ds = build_dataset(lab, "train")
    lines = (folder / "train.txt").read_text().splitlines()
    assert lines[0] == f"JPEGImages/{ds.ids[0]}.jpg SegmentationClassAug/{ds.ids[0]}.png"
    pred = io.read_label_png(folder / f"{ds.ids[0]}.png")
    assert pred.shape == ds.image_size(0)
    assert set(np.unique(pred)) <= {0, *(np.flatnonzero(ds.labels()[0] > 0) + 1)}
    assert 0 <= m["miou"] <= 1
    assert labels_stage.run(lab)["skipped"] == 4


def test_load_segmodel_checks_the_network(tmp_path, compose):
    cfg = compose(["stage=labels", "run=t", "segmodel.build.width=8"])

    with pytest.raises(UserError, match="stage=sec"):
        load_segmodel(cfg, torch.device("cpu"))
    path = tmp_path / "x.pt"
    io.save_checkpoint(path, {"model": {}, "segmodel": "largefov"})
    with pytest.raises(UserError, match="largefov"):
        load_segmodel(cfg, torch.device("cpu"), path)
