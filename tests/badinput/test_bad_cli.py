"""The real command line on bad input, where the exit code and the absence of a traceback are the point:
a whole-run problem is ONE error line and exit code 2; a bad item is a warning and exit code 0."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch
from badinput_corpus import BROKEN_IMAGES, folder_overrides, toy_folder
from badinput_corpus import write_folder as write
from distributed import wsl

from wsl.layout import RunLayout


def wsl_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return wsl(list(args), cwd, timeout=600)  # tests/distributed.py: no WSL_KILL_AFTER, one thread


def one_error_line(r: subprocess.CompletedProcess, words: str) -> str:
    """Exit code 2, no traceback, exactly one ERROR line (or, before logging starts, one line at all)."""
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if "[ERROR]" in line] or out.strip().splitlines()
    assert len(errors) == 1 and words in errors[0], out[-3000:]
    return errors[0]


def test_output_root_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x")
    r = wsl_cli("stage=train", f"paths.output_root={tmp_path / 'a_file' / 'out'}", cwd=tmp_path)
    line = one_error_line(r, f"cannot write or read {tmp_path / 'a_file' / 'out'}")
    assert "Not a directory" in line
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK | os.X_OK):  # a read-only file system
        one_error_line(wsl_cli("stage=train", "paths.output_root=/sys/wsl_out", cwd=tmp_path), "/sys/wsl_out")


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=pytest.mark.slow) for k in ("text", "pickle", "other_head", "directory")],
)
def test_checkpoint_problems_are_one_line(kind, tmp_path, trained_root, data_root):
    ckpt = tmp_path / "ckpt.pt"
    if kind == "text":
        ckpt.write_text("these are not weights\n")
    elif kind == "pickle":
        ckpt.write_bytes(pickle.dumps({"model": subprocess.CompletedProcess(["x"], 0)}))
    elif kind == "other_head":
        torch.save({"module.fc.weight": torch.zeros(1000, 96), "module.fc.bias": torch.zeros(1000)}, ckpt)
    else:
        ckpt.mkdir()
    args = [
        "stage=cams",
        f"model.checkpoint={ckpt}",
        f"paths.data_root={data_root}",
        f"paths.output_root={tmp_path / 'out'}",
        "++dataset.prepare.n_train=48",
        "++dataset.prepare.n_val=24",
    ]
    words = {
        "text": "is not a checkpoint wsl can load safely (weights_only=True)",
        "pickle": "is not a checkpoint wsl can load safely (weights_only=True)",
        "other_head": "shape mismatch (file vs model) fc.weight (1000, 96) vs (6, 96)",
        "directory": "cannot read checkpoint",
    }[kind]
    line = one_error_line(wsl_cli(*args, cwd=tmp_path), words)
    assert str(ckpt) in line


@pytest.mark.slow  # in-process twins: tests/test_config.py (values), tests/stages/test_train.py (checkpoints)
def test_bad_values_are_one_line(tmp_path):
    r = wsl_cli(
        "stage=cams",
        "stage.batch_size=-1",
        "stage.limit=-1",
        "stage.scales=[0.0]",
        "stage.max_failed=2",
        "dataset.max_side=0",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    line = one_error_line(r, "invalid configuration: ")
    for part in (
        "stage.batch_size=-1: expected an int >= 1",
        "stage.limit=-1: expected an int >= 1 or null",
        "stage.scales=[0.0]: expected a non-empty list of numbers > 0",
        "stage.max_failed=2.0: expected a number in [0, 1]",
        "dataset.max_side=0: expected an int >= 16 or null",
    ):
        assert part in line, line


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory, data_root) -> Path:
    data = tmp_path_factory.mktemp("cli_folder")
    images, labels = toy_folder(data / "folder", data_root / "toy/VOCdevkit/VOC2012", 6)
    for name in ("zero_byte", "random_bytes", "one_pixel"):
        suffix, make, _ = BROKEN_IMAGES[name]
        images[name], labels[name] = (suffix, make()), ["star"]
    write(data / "folder", images, labels)
    return data


@pytest.mark.slow
def test_broken_images_are_warnings_or_one_error_line(broken_folder, trained_root, tmp_path):
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    args = ["stage=cams", *folder_overrides(broken_folder, ckpt), f"paths.output_root={tmp_path}"]
    r = wsl_cli(*args, "stage.max_failed=0.5", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, out[-3000:]
    for name in ("zero_byte", "random_bytes", "one_pixel"):
        assert sum(f"skipping {name}:" in line for line in out.splitlines()) == 1, out[-3000:]
    assert "6 images done, 0 skipped, 3 failed" in out
    r = wsl_cli(*args, "stage.overwrite=true", cwd=tmp_path)
    one_error_line(r, "cams gradcam/val: 3 of 9 items failed (33.3%), more than stage.max_failed=0.01")


@pytest.mark.slow
def test_a_folder_that_cannot_be_written_inside_a_stage_is_one_line(broken_folder, trained_root, tmp_path):
    """Hydra's logs can be written (hydra.run.dir), the stage's output folder cannot."""
    (tmp_path / "a_file").write_text("x")
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    r = wsl_cli(
        "stage=cams",
        *folder_overrides(broken_folder, ckpt),
        "stage.max_failed=0.5",
        f"paths.output_root={tmp_path / 'a_file'}",
        f"hydra.run.dir={tmp_path / 'logs'}",
        cwd=tmp_path,
    )
    one_error_line(r, "Not a directory")
