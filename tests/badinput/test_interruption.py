"""SIGKILL at chosen points of train, cams, seeds, sec and labels (real child processes of the CLI), then
re-runs: every output file present and loadable, and the same results as an uninterrupted run.

The kill points come from ``WSL_KILL_AFTER=<glob>:<n>`` (wsl.io: the process SIGKILLs itself right after
its n-th completed atomic write of a matching file), so "right after the last checkpoint" is exact, not a
race on log lines. Each interrupted stage starts from a copy of the uninterrupted run's inputs, so that
only the interruption differs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsl import REPO_ROOT, io
from wsl.layout import RunLayout

pytestmark = pytest.mark.slow
RUN = "toy-small_cnn"
TRAIN = ["stage=train", "stage.epochs=2", "stage.batch_size=16"]
SEG = ["segmodel.input_size=64", "segmodel.build.width=8", "stage.crf_processes=0"]
SEC = ["stage=sec", "stage.split=val", *SEG, "stage.batch_size=4", "stage.iterations=6",
       "stage.checkpoint_every=2", "stage.log_every=1"]  # fmt: skip
STAGES = {
    "train": TRAIN,
    "cams": ["stage=cams", "stage.split=val"],
    "seeds": ["stage=seeds", "stage.split=val", "stage.crf_processes=0"],
    "sec": SEC,
    "labels": ["stage=labels", "stage.split=val", *SEG],
}


def wsl(out: Path, data_root: Path, stage: str, kill_after: str | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WSL_KILL_AFTER", None)
    if kill_after:
        env["WSL_KILL_AFTER"] = kill_after
    args = [*STAGES[stage], f"paths.data_root={data_root}", f"paths.output_root={out}", "num_workers=0",
            "++dataset.prepare.n_train=48", "++dataset.prepare.n_val=24"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "wsl.run", *args], env=env, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    if kill_after:
        assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-3000:])
    else:
        assert r.returncode == 0, r.stderr[-3000:]
    return r.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root) -> Path:
    """The uninterrupted run: every stage once, in order."""
    out = tmp_path_factory.mktemp("uninterrupted")
    for stage in STAGES:
        wsl(out, data_root, stage)
    return out


def _copy(reference: Path, dest: Path, *parts: str) -> None:
    for part in parts:
        shutil.copytree(reference / RUN / part, dest / RUN / part)


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = io.load_state_dict(a), io.load_state_dict(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{b}: {k} differs from the uninterrupted run"


def _loadable(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / name
        assert path.is_file(), f"{path} missing"
        if path.suffix == ".json":
            io.read_json(path)
        elif path.suffix == ".pt":
            io.load_checkpoint(path)
        elif path.suffix == ".png":
            Image.open(path).load()
        elif path.suffix == ".npz":
            io.load_cams(path, 6)


def test_train_killed_then_killed_right_after_its_last_checkpoint(reference, data_root, tmp_path):
    wsl(tmp_path, data_root, "train", "last.pt:1")  # after epoch 1 of 2
    wsl(tmp_path, data_root, "train", "last.pt:1")  # resumed, killed right after the final last.pt
    folder = RunLayout(tmp_path / RUN).train()
    assert io.load_checkpoint(folder / "last.pt")["epoch"] == 2 and not (folder / "metrics.json").exists()
    wsl(tmp_path, data_root, "train")  # writes what is missing instead of "nothing to do"
    _loadable(folder, ["best.pt", "last.pt", "metrics.json", "curves.png", "manifest.json"])
    ref = RunLayout(reference / RUN).train()
    for name in ("last.pt", "best.pt"):
        _same_weights(ref / name, folder / name)
    assert io.read_json(folder / "metrics.json") == io.read_json(ref / "metrics.json")


def test_cams_killed_twice(reference, data_root, tmp_path):
    _copy(reference, tmp_path, "train")
    wsl(tmp_path, data_root, "cams", "*.npz:5")
    wsl(tmp_path, data_root, "cams", "*.npz:19")  # the 24th and last map: killed before the manifest
    folder, ref = (RunLayout(root / RUN).cams("gradcam", "val") for root in (tmp_path, reference))
    assert not RunLayout.manifest(folder).exists()
    wsl(tmp_path, data_root, "cams")
    names = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names  # the same set of files, no temporary left
    _loadable(folder, names)
    for name in (n for n in names if n.endswith(".npz")):
        a, b = io.load_cams(ref / name), io.load_cams(folder / name)
        assert a["classes"].tolist() == b["classes"].tolist()
        np.testing.assert_allclose(a["maps"], b["maps"], atol=2e-3)  # float16 rounding of batched maps


def test_seeds_killed(reference, data_root, tmp_path):
    _copy(reference, tmp_path, "train", "cams")
    wsl(tmp_path, data_root, "seeds", "*.png:3")
    wsl(tmp_path, data_root, "seeds")
    folder, ref = (RunLayout(root / RUN).seeds("gradcam", "val") for root in (tmp_path, reference))
    names = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names
    _loadable(folder, names)
    for name in (n for n in names if n.endswith(".png")):
        assert (io.read_label_png(ref / name) == io.read_label_png(folder / name)).all(), name


def test_sec_killed_mid_training_then_right_after_final(reference, data_root, tmp_path):
    _copy(reference, tmp_path, "train", "cams", "seeds")
    wsl(tmp_path, data_root, "sec", "last.pt:2")  # at iteration 4 of 6
    wsl(tmp_path, data_root, "sec", "final.pt:1")  # resumed; killed right after final.pt
    folder = RunLayout(tmp_path / RUN).sec("gradcam")
    assert not (folder / "history.json").exists()
    wsl(tmp_path, data_root, "sec")
    outputs = ["final.pt", "last.pt", "history.json", "loss.png", "metrics.json", "manifest.json"]
    _loadable(folder, outputs)
    ref = RunLayout(reference / RUN).sec("gradcam")
    _same_weights(ref / "final.pt", folder / "final.pt")
    assert io.read_json(folder / "history.json") == io.read_json(ref / "history.json")


def test_labels_killed_then_killed_before_the_manifest(reference, data_root, tmp_path):
    _copy(reference, tmp_path, "train", "sec")
    wsl(tmp_path, data_root, "labels", "*.png:4")
    wsl(tmp_path, data_root, "labels", "val.txt:1")  # every PNG and the list written, not the manifest
    folder, ref = (RunLayout(root / RUN).labels("gradcam", "val") for root in (tmp_path, reference))
    assert not RunLayout.manifest(folder).exists()
    wsl(tmp_path, data_root, "labels")
    names = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names
    _loadable(folder, names)
    assert (folder / "val.txt").read_text() == (ref / "val.txt").read_text()
    for name in (n for n in names if n.endswith(".png")):
        assert (io.read_label_png(ref / name) == io.read_label_png(folder / name)).all(), name
