"""stage=cams on the small toy data: file contents, resume, overwrite, corrupt images, torchrun, multirun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from wsl import REPO_ROOT, io
from wsl.layout import RunLayout
from wsl.stages import cams


def _val(out, cam="gradcam"):
    return RunLayout(out / "toy-small_cnn").cams(cam, "val")


@pytest.fixture
def cams_cfg(compose_at):
    return lambda out, *extra: compose_at(["stage=cams", "num_workers=0", *extra], out)


def test_files_hold_label_and_topk_classes(trained, data_root, cams_cfg):
    cfg = cams_cfg(trained, "stage.limit=6", "stage.top_k=2")
    metrics = cams.run(cfg)
    folder = _val(trained)
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 6 and metrics["images"] == 6
    from wsl.data.toy import TOY_CLASSES
    from wsl.data.voc import VOCDataset

    ds = VOCDataset(data_root / "toy/VOCdevkit/VOC2012", "val", class_names=list(TOY_CLASSES))
    for i in range(6):
        rec = io.load_cams(folder / f"{ds.ids[i]}.npz")
        h, w = ds.image_size(i)
        assert rec["image_size"].tolist() == [h, w]
        assert rec["maps"].shape == (len(rec["classes"]), math.ceil(h / 4), math.ceil(w / 4))
        label = set(np.flatnonzero(ds.labels()[i]).tolist())
        top2 = set(np.argsort(-rec["logits"])[:2].tolist())
        assert set(rec["classes"].tolist()) == label | top2
        assert rec["maps"].min() >= 0 and np.isclose(rec["maps"].max(axis=(1, 2)), 1, atol=1e-3).any()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 6, "skipped": 0, "failed": 0} and manifest["images_per_s"] > 0
    assert "cam_miou" in manifest


def test_rerun_resumes_and_overwrite_redoes(trained, cams_cfg):
    folder = _val(trained)
    cams.run(cams_cfg(trained, "stage.limit=4"))
    victim = sorted(folder.glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:50])  # an interrupted write elsewhere would look like this
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")}
    metrics = cams.run(cams_cfg(trained, "stage.limit=4"))
    assert metrics["images"] == 1  # only the broken file was redone
    assert io.is_complete_npz(victim)
    assert all(p.stat().st_mtime_ns == stamp[p.name] for p in folder.glob("*.npz") if p != victim)
    assert cams.run(cams_cfg(trained, "stage.limit=4", "stage.overwrite=true"))["images"] == 4
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_corrupt_image_is_skipped_and_counted(trained, data_root, tmp_path, compose_at):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_root / "toy", data / "toy")
    jpgs = data / "toy/VOCdevkit/VOC2012/JPEGImages"
    ids = (data / "toy/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()
    (jpgs / f"{ids[1]}.jpg").write_bytes((jpgs / f"{ids[1]}.jpg").read_bytes()[:200])
    cfg = compose_at(["stage=cams", "num_workers=0", "stage.limit=3", "stage.max_failed=0.5"], trained, data)
    cams.run(cfg)
    manifest = json.loads((_val(trained) / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert list(manifest["failed_items"]) == [ids[1]] and "Truncated" in manifest["failed_items"][ids[1]]


def _cli_paths(data_root, out) -> list[str]:
    """Overrides pointing the CLI at the session's small toy data and the module's run folder."""
    return [
        f"paths.data_root={data_root}",
        f"paths.output_root={out}",
        "num_workers=0",
        "++dataset.prepare.n_train=48",
        "++dataset.prepare.n_val=24",
    ]


def _cli(args, cwd, torchrun=False):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    head = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "wsl.run"]
        if torchrun
        else [sys.executable, "-m", "wsl.run"]
    )
    return subprocess.run([*head, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(trained, data_root, tmp_path):
    common = _cli_paths(data_root, trained)
    one = _cli(["stage=cams", "run=toy-small_cnn", "cam=gradcam", *common, "stage.overwrite=true"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    folder = _val(trained)
    single = {p.name: io.load_cams(p) for p in folder.glob("*.npz")}
    two = _cli(["stage=cams", "stage.overwrite=true", *common], tmp_path, torchrun=True)
    assert two.returncode == 0, two.stderr[-3000:]
    double = {p.name: io.load_cams(p) for p in folder.glob("*.npz")}
    assert set(single) == set(double) and len(single) == 24
    for name, rec in single.items():
        np.testing.assert_array_equal(rec["classes"], double[name]["classes"])
        np.testing.assert_allclose(rec["maps"], double[name]["maps"], atol=2e-3)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["counts"]["done"] == 24


@pytest.mark.slow
def test_multirun_over_methods_does_not_collide(trained, data_root, tmp_path):
    common = [*_cli_paths(data_root, trained), "stage.limit=3"]
    r = _cli(["-m", "stage=cams", "cam=gradcam,hirescam,layercam", *common], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for m in ("gradcam", "hirescam", "layercam"):
        folder = _val(trained, m)
        assert len(list(folder.glob("*.npz"))) >= 3 and (folder / "manifest.json").is_file()
