"""The rest of the corpus: file modes, the max_failed arithmetic, checkpoint forms in stage=cams, and the
configuration values of the issue (one line each, with the allowed range)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from wsl import REPO_ROOT, io
from wsl.config_schema import validate_config
from wsl.errors import Failures, UserError
from wsl.layout import RunLayout
from wsl.stages import cams


def test_files_get_the_mode_of_the_umask(tmp_path):
    """mkstemp makes 0600 files; an atomic write must give what open() gives (0644 under umask 022)."""
    code = (
        "import os, sys; os.umask(0o022); sys.path.insert(0, sys.argv[2]); from wsl import io; "
        "io.write_json(sys.argv[1], {'a': 1}); print(oct(os.stat(sys.argv[1]).st_mode & 0o777))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.json"), str(REPO_ROOT)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "0o644"
    io.write_text(tmp_path / "here.txt", "x")  # in this process: whatever its umask is
    assert stat.S_IMODE(os.stat(tmp_path / "here.txt").st_mode) == io.FILE_MODE


def test_max_failed_is_a_fraction_of_the_split():
    f = Failures({"a": "broken"})
    f.check(100, 0.01, "x")  # 1 of 100: not more than 1 %
    f.add("b", "broken\ntwice")
    assert f.items["b"] == "broken twice"  # one line, whatever the exception said
    with pytest.raises(
        UserError, match=r"^x: 2 of 100 items failed \(2.0%\), more than stage.max_failed=0.01"
    ):
        f.check(100, 0.01, "x")
    Failures({"a": "x"}).check(1, 1.0, "x")  # max_failed=1: never stops
    with pytest.raises(UserError):
        Failures({"a": "x"}).check(10, 0.0, "x")  # max_failed=0: any bad item stops
    merged = Failures({"a": "1"}).merge(Failures({"b": "2", "a": "other"}))
    assert merged.as_dict() == {"a": "1", "b": "2"}


@pytest.mark.parametrize("form", ["plain", "ddp"])
def test_cams_accepts_the_checkpoint_forms_train_accepts(form, trained_root, compose_at, tmp_path):
    state = io.load_state_dict(RunLayout(trained_root / "toy-small_cnn").classifier())
    ckpt = tmp_path / "c.pt"
    torch.save(state if form == "plain" else {f"module.{k}": v for k, v in state.items()}, ckpt)
    cfg = compose_at(["stage=cams", "num_workers=0", "stage.limit=2", f"model.checkpoint={ckpt}"], tmp_path)
    assert cams.run(cfg)["images"] == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ("stage.batch_size=-1", "stage.batch_size=-1: expected an int >= 1"),
        ("stage.limit=-1", "stage.limit=-1: expected an int >= 1 or null"),
        ("stage.scales=[]", "stage.scales=[]: expected a non-empty list of numbers > 0"),
        ("stage.scales=[0.0]", "stage.scales=[0.0]: expected a non-empty list of numbers > 0"),
        ("stage.stride=0", "stage.stride=0: expected an int >= 1"),
        ("num_workers=-1", "num_workers=-1: expected an int >= 0"),
        ("stage.max_failed=-0.1", "stage.max_failed=-0.1: expected a number in [0, 1]"),
        ("dataset.min_side=0", "dataset.min_side=0: expected an int >= 1"),
        ("dataset.max_side=8", "dataset.max_side=8: expected an int >= 16 or null"),
    ],
)
def test_configuration_values_of_the_issue(override, message, compose_at, tmp_path):
    cfg = compose_at(["stage=cams", override], tmp_path)
    with pytest.raises(UserError) as e:
        validate_config(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_eval_step_of_zero(compose_at, tmp_path):
    cfg = compose_at(["stage=eval", "stage.box_acc_step=0"], tmp_path)
    with pytest.raises(UserError, match=r"stage.box_acc_step=0.0: expected a number in \(0, 1\]"):
        validate_config(cfg)
    assert OmegaConf.select(compose_at(["stage=eval"], tmp_path), "stage.max_failed") == 0.01
