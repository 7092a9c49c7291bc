"""The real command line, in a subprocess, from another current directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from distributed import wsl

from wsl.layout import RunLayout


def wsl_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return wsl(args, cwd, timeout=600, **(env or {}))  # tests/distributed.py


@pytest.mark.slow  # the quick suite's CLI tests: --help, one bad option, progress lines
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
        assert (RunLayout(run).train() / name).is_file(), name
    manifest = json.loads(RunLayout.manifest(RunLayout(run).train()).read_text())
    assert manifest["counts"]["done"] == 48 and manifest["config"]["stage"]["name"] == "train"
    assert (RunLayout(run).logs("train") / ".hydra" / "config.yaml").is_file()
    r = wsl_cli(["stage=cams", "stage.limit=5", *common], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(RunLayout(run).cams("gradcam", "val").glob("*.npz"))) == 5


@pytest.mark.parametrize(
    "override,expected",
    [
        ("stage=cams stage.batch_size=abc", "invalid configuration: stage.batch_size=abc: expected int"),
        ("stage=cams stage.batch_sizee=3", "batch_sizee=3: unknown key (did you mean stage.batch_size?)"),
        # tests/test_config.py checks these messages in-process; through the CLI in the full suite only
        *(
            pytest.param(o, e, marks=pytest.mark.slow)
            for o, e in (
                ("cam=nope", "invalid configuration: cam=nope: expected one of ablationcam, cam,"),
                ("dataset=imagenet", "dataset=imagenet: expected one of coco, folder, toy, toy_coco, voc"),
                (
                    "stage=cams stage.batch_size=0",
                    "invalid configuration: stage.batch_size=0: expected an int >= 1",
                ),
            )
        ),
    ],
)
def test_bad_configuration_is_one_error_line(override, expected, tmp_path):
    """Hydra's composition errors and the start-up range check: one line, exit code 2, no traceback."""
    r = wsl_cli([*override.split(), f"paths.output_root={tmp_path}"], cwd=tmp_path)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 2 and expected in out and len(out.splitlines()) == 1, out


def test_help_prints_the_stage_table(tmp_path):
    from wsl.stages import STAGES, WRITES

    r = wsl_cli(["--help"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    for name in STAGES:  # one row per stage: its name, then what it reads and writes
        row = next(line for line in lines if line.startswith(f"{name} "))
        assert WRITES[name][0] in row, row


@pytest.mark.slow
def test_pretrained_weights_offline_is_one_line_naming_the_key(tmp_path):
    """model.pretrained=true with no cached file and no network: one line with the key and the file."""
    offline = {"TORCH_HOME": str(tmp_path / "hub"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9"}  # fmt: skip
    args = ["stage=train", "model=resnet18", "model.pretrained=true", f"paths.output_root={tmp_path}"]
    r = wsl_cli(args, cwd=tmp_path, env=offline)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert "model.pretrained=false" in out and str(tmp_path / "hub") in out


def test_progress_lines_and_summary_when_output_is_a_file(trained_root, data_root, tmp_path):
    """Output to a pipe (a log file, nohup, SLURM): periodic progress lines, then one summary line naming
    the folder written. WSL_PROGRESS_INTERVAL=0 makes every image a progress line."""
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    args = ["stage=cams", "stage.limit=4", "num_workers=0", f"model.checkpoint={ckpt}",
            f"paths.data_root={data_root}", f"paths.output_root={tmp_path / 'out'}",
            "++dataset.prepare.n_train=48", "++dataset.prepare.n_val=24"]  # fmt: skip
    r = wsl_cli(args, cwd=tmp_path, env={"WSL_PROGRESS_INTERVAL": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "cams gradcam val: 4/4 img" in out and "img/s" in out
    folder = RunLayout(tmp_path / "out" / "toy-small_cnn").cams("gradcam", "val")
    assert "cams gradcam/val: 4 images done, 0 skipped, 0 failed" in out and f"-> {folder}" in out
    assert "torch uses " in out and "DataLoader worker(s)" in out  # the thread count it chose, and why
