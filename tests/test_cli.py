"""The real command line, in a subprocess, from another current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsl.run import REPO_ROOT


def wsl_cli(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "wsl.run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def test_train_then_cams_from_another_cwd(data_root, tmp_path):
    common = [
        f"paths.data_root={data_root}",
        f"paths.output_root={tmp_path / 'out'}",
        "num_workers=0",
        "++dataset.prepare.n_train=48",
        "++dataset.prepare.n_val=24",
    ]
    r = wsl_cli(["stage=train", "stage.epochs=1", "stage.batch_size=16", *common], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "out" / "toy-small_cnn"
    for name in ("best.pt", "last.pt", "metrics.json", "manifest.json", "curves.png"):
        assert (run / "train" / name).is_file(), name
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert manifest["counts"]["done"] == 48 and manifest["config"]["stage"]["name"] == "train"
    assert (run / "logs" / "train" / ".hydra" / "config.yaml").is_file()
    r = wsl_cli(["stage=cams", "stage.limit=5", *common], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((run / "cams" / "gradcam" / "val").glob("*.npz"))) == 5


@pytest.mark.parametrize(
    "override,expected",
    [
        ("stage.top_k=many", "stage.top_k: expected int"),
        ("stage=cams stage.nonsense=1", "nonsense"),
        ("dataset=imagenet", "imagenet"),
    ],
)
def test_bad_configuration_is_a_clear_error(override, expected, tmp_path):
    r = wsl_cli([*override.split(), f"paths.output_root={tmp_path}"], cwd=tmp_path)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert expected in out and "Traceback" not in out
