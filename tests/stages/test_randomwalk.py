"""stage=randomwalk: PNGs and list file like stage=labels, resume, bad items, interruption, torchrun."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed import cli_paths, ok, same_tree, wsl

from wsl import io
from wsl.errors import UserError
from wsl.layout import RunLayout
from wsl.refine import AffinityNet
from wsl.stages import cams as cams_stage
from wsl.stages import randomwalk as rw_stage
from wsl.stages.common import build_dataset, layout, load_classifier

RUN = "toy-small_cnn"
AFFINITY = ["stage=affinity", "stage.split=val", "stage.limit=8", "stage.epochs=1", "stage.batch_size=4",
            "stage.crop_size=64", "stage.radius=4", "stage.crf_processes=0"]  # fmt: skip
RW = ["stage=randomwalk", "stage.split=val", "stage.crf_processes=0"]


def _network(cfg, kind: str = "boundary") -> None:
    """A randomly initialised affinity head on the run's classifier, saved where stage=affinity would."""
    torch.manual_seed(0)
    net = AffinityNet(load_classifier(cfg, torch.device("cpu")), kind, 8, 4)
    state = {"model": net.state_dict(), "kind": kind, "width": 8, "embed_dim": 4, "iteration": 1}
    io.save_checkpoint(layout(cfg).affinity_network(cfg.cam.name), state)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "crf"), [("boundary", False), ("embedding", True)])
def test_pseudo_labels_list_metrics_and_resume(trained, compose, kind, crf):
    cams_stage.run(compose(["stage=cams", "stage.split=train", "stage.limit=3"], trained))
    cfg = compose(["stage=randomwalk", "stage.limit=3", "stage.crf_processes=0", f"stage.crf={crf}",
                   "stage.exp_times=4", "stage.list_label_prefix=pseudo/"], trained)  # fmt: skip
    _network(cfg, kind)
    m = rw_stage.run(cfg)
    assert (m["done"], m["skipped"], m["failed"], m["listed"]) == (3, 0, 0, 3)
    ds = build_dataset(cfg, "train")
    folder = layout(cfg).randomwalk(cfg.cam.name, "train")
    assert layout(cfg).randomwalk_list(cfg.cam.name, "train") == folder / "train.txt"
    assert (folder / "train.txt").read_text().splitlines() == [
        f"JPEGImages/{i}.jpg pseudo/{i}.png" for i in ds.ids[:3]
    ]
    for i in range(3):
        pred = io.read_label_png(folder / f"{ds.ids[i]}.png")
        assert pred.shape == ds.image_size(i)
        assert set(np.unique(pred)) <= {0, *(np.flatnonzero(ds.labels()[i] > 0) + 1)}  # labelled classes only
    assert 0 <= m["miou"] <= 1 and m["labels"]["images"] == 3
    assert (folder / "manifest.json").is_file()
    again = rw_stage.run(cfg)
    assert (again["done"], again["skipped"], again["listed"]) == (0, 3, 3)


def test_missing_network_is_one_line(trained, compose):
    cfg = compose(["stage=randomwalk", "stage.limit=1"], trained)
    with pytest.raises(UserError, match="run `python -m wsl.run stage=affinity"):
        rw_stage.run(cfg)


@pytest.mark.slow
def test_damaged_cam_file_is_skipped_and_counted(trained, compose):
    cams_stage.run(compose(["stage=cams", "stage.split=train", "stage.limit=3"], trained))
    cfg = compose(
        ["stage=randomwalk", "stage.limit=3", "stage.crf_processes=0", "stage.max_failed=0.5"], trained
    )
    _network(cfg)
    ds = build_dataset(cfg, "train")
    (layout(cfg).cams(cfg.cam.name, "train") / f"{ds.ids[1]}.npz").write_bytes(b"damaged")
    m = rw_stage.run(cfg)
    assert (m["done"], m["failed"], m["listed"]) == (2, 1, 2)


@pytest.fixture(scope="module")
def reference(trained_root, data_root, tmp_path_factory) -> Path:
    """One process, real CLI: cams, a tiny affinity network and the random walk on the val split."""
    out = tmp_path_factory.mktemp("rw_one")
    shutil.copytree(trained_root / RUN / "train", out / RUN / "train")
    for args in (["stage=cams", "stage.split=val"], AFFINITY, RW):
        ok(wsl([*args, *cli_paths(data_root, out)], out))
    return out


def _inputs(reference: Path, out: Path) -> None:
    for part in ("train", "cams", "affinity"):
        shutil.copytree(reference / RUN / part, out / RUN / part)


@pytest.mark.slow
def test_killed_then_resumed_writes_the_same_files(reference, data_root, tmp_path):
    out = tmp_path / "killed"
    _inputs(reference, out)
    args = [*RW, *cli_paths(data_root, out)]
    r = wsl(args, out, WSL_KILL_AFTER="*.png:5")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    folder = RunLayout(out / RUN).randomwalk("gradcam", "val")
    assert len(list(folder.glob("*.png"))) == 5 and not RunLayout.manifest(folder).exists()
    ok(wsl(args, out))
    same_tree(RunLayout(reference / RUN).randomwalk("gradcam", "val"), folder, json_root=(out, reference),
              skip=("manifest.json", "metrics.json"))  # fmt: skip
    assert io.read_json(folder / "metrics.json")["skipped"] == 5


@pytest.mark.slow
def test_two_processes_write_the_files_of_one(reference, data_root, tmp_path):
    out = tmp_path / "two"
    _inputs(reference, out)
    ok(wsl([*RW, *cli_paths(data_root, out)], out, nproc=2))
    folder = RunLayout(out / RUN).randomwalk("gradcam", "val")
    same_tree(RunLayout(reference / RUN).randomwalk("gradcam", "val"), folder, json_root=(out, reference))
    assert io.read_json(RunLayout.manifest(folder))["world_size"] == 2
