"""``pip install .`` (a wheel, not an editable install) runs from any directory: conf/ ships inside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsl import CHECKOUT
from wsl.layout import RunLayout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout installed (no dependencies: they are this venv's) into a folder."""
    if CHECKOUT is None:
        pytest.skip("needs a source checkout to build the wheel from")
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", CHECKOUT],
                   check=True, capture_output=True)  # fmt: skip
    wheel = next((tmp / "dist").glob("wsl-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", tmp / "site", wheel], check=True, capture_output=True
    )
    return tmp / "site"


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_holds_the_configuration_and_runs(installed, tmp_path, trained_root, data_root):
    where = _run(installed, tmp_path, "-c", "import wsl; print(wsl.__file__, wsl.CONF_DIR)")
    assert where.returncode == 0 and str(installed) in where.stdout, where.stdout + where.stderr
    assert (installed / "wsl" / "conf" / "config.yaml").is_file()
    help_ = _run(installed, tmp_path, "-m", "wsl.run", "--help")
    assert help_.returncode == 0 and "stage" in help_.stdout, help_.stderr[-2000:]
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    r = _run(installed, tmp_path, "-m", "wsl.run", "stage=cams", "stage.limit=4", "num_workers=0",
             f"model.checkpoint={ckpt}", f"paths.data_root={data_root}", "++dataset.prepare.n_train=48",
             "++dataset.prepare.n_val=24")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    # an installed wheel has no checkout: outputs/ goes to the current directory by default
    assert (
        len(list(RunLayout(tmp_path / "outputs" / "toy-small_cnn").cams("gradcam", "val").glob("*.npz"))) == 4
    )
