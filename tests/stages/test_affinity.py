"""stage=affinity end to end on the small toy data: confident regions, training, outputs, resume."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from distributed import cli_paths, ok, same_tree, wsl

from wsl import io
from wsl.evaluation import score_seeds
from wsl.layout import RunLayout
from wsl.stages import affinity as affinity_stage
from wsl.stages import cams as cams_stage
from wsl.stages.common import build_dataset, layout

pytestmark = pytest.mark.slow
RUN = "toy-small_cnn"
FAST = ["stage.limit=8", "stage.epochs=1", "stage.batch_size=4", "stage.crop_size=64", "stage.radius=4",
        "stage.crf_processes=0", "stage.checkpoint_every=1", "stage.log_every=1",
        "num_workers=0"]  # fmt: skip
CLI = ["stage=affinity", "stage.split=val", *FAST, "stage.limit=12"]


@pytest.mark.parametrize("loss", ["boundary", "affinity"])
def test_affinity_trains_writes_and_skips_when_done(trained, compose, loss):
    cfg = compose(["stage=cams", "stage.split=train", "stage.limit=8"], trained)
    cams_stage.run(cfg)
    cfg = compose(["stage=affinity", f"stage.loss={loss}", *FAST], trained)
    m = affinity_stage.run(cfg)
    out = layout(cfg).affinity(cfg.cam.name)
    assert m["iterations"] == 2 and m["images"] == 8 and m["confident_regions"]["written"] == 8
    ds = build_dataset(cfg, "train")
    for i in range(8):
        seeds = io.read_label_png(layout(cfg).affinity_labels(cfg.cam.name) / f"{ds.ids[i]}.png")
        assert seeds.shape == ds.image_size(i)
        assert set(np.unique(seeds)) <= {0, 255, *(np.flatnonzero(ds.labels()[i] > 0) + 1)}
    # the confident regions' seed scores (the loop table's "IRN confident regions" row)
    gt = build_dataset(cfg, "train", True)
    direct = score_seeds(gt, layout(cfg).affinity_labels(cfg.cam.name), range(8))
    assert 0 < m["confident_seeds"]["miou"] == pytest.approx(direct.miou)
    state = io.load_checkpoint(out / "final.pt")
    assert (
        state["kind"] == {"boundary": "boundary", "affinity": "embedding"}[loss] and state["iteration"] == 2
    )
    assert all(np.isfinite(h["total"]) for h in io.read_json(out / "history.json"))
    assert (out / "manifest.json").is_file() and (out / "last.pt").is_file()
    assert affinity_stage.run(cfg) == m  # finished: nothing to do


def test_unusable_cam_file_is_skipped_and_counted(trained, compose):
    cams_stage.run(compose(["stage=cams", "stage.split=train", "stage.limit=8"], trained))
    cfg = compose(["stage=affinity", *FAST, "stage.max_failed=0.5"], trained)
    ds = build_dataset(cfg, "train")
    (layout(cfg).cams(cfg.cam.name, "train") / f"{ds.ids[2]}.npz").write_bytes(b"damaged")
    m = affinity_stage.run(cfg)
    assert m["confident_regions"]["failed"] == 1 and m["images"] == 7
    manifest = io.read_json(RunLayout.manifest(layout(cfg).affinity(cfg.cam.name)))
    assert list(manifest["failed_items"]) == [ds.ids[2]]


def test_killed_after_a_checkpoint_resumes_to_the_same_weights(trained_root, data_root, tmp_path):
    runs = {}
    for name, kill in (("whole", None), ("killed", "last.pt:1")):
        out = tmp_path / name
        shutil.copytree(trained_root / RUN / "train", out / RUN / "train")
        ok(wsl(["stage=cams", "stage.split=val", *cli_paths(data_root, out)], out))
        args = [*CLI, *cli_paths(data_root, out)]
        if kill:
            r = wsl(args, out, WSL_KILL_AFTER=kill)
            assert r.returncode != 0 and "Traceback" not in r.stderr
            folder = RunLayout(out / RUN).affinity("gradcam")
            assert (
                io.load_checkpoint(folder / "last.pt")["iteration"] == 1
                and not (folder / "final.pt").exists()
            )
        ok(wsl(args, out))
        runs[name] = RunLayout(out / RUN).affinity("gradcam")
    a, b = (io.load_state_dict(runs[k] / "final.pt") for k in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert io.read_json(runs["whole"] / "history.json") == io.read_json(runs["killed"] / "history.json")


def test_two_torchrun_processes_train_as_one(trained_root, data_root, tmp_path):
    """Each rank trains on its half of the global batches of one process, with the loss normalised over the
    whole batch's pairs: the head ends with the single-process weights to float rounding, the history with
    its losses, and the confident regions (sharded) are the same files."""
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        shutil.copytree(trained_root / RUN / "train", out / RUN / "train")
        if nproc == 1:
            ok(wsl(["stage=cams", "stage.split=val", *cli_paths(data_root, out)], out))
        else:  # the same CAM files (stage=cams under torchrun is tested byte-identical elsewhere)
            shutil.copytree(tmp_path / "p1" / RUN / "cams", out / RUN / "cams")
        ok(wsl([*CLI, *cli_paths(data_root, out)], out, nproc=nproc))
        runs[nproc] = RunLayout(out / RUN).affinity("gradcam")
    assert io.read_json(RunLayout.manifest(runs[2]))["world_size"] == 2
    same_tree(runs[1] / "confident", runs[2] / "confident")
    one, two = (io.load_state_dict(runs[n] / "final.pt") for n in (1, 2))
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-5, rtol=1e-4, msg=k)
    h1, h2 = (io.read_json(runs[n] / "history.json") for n in (1, 2))
    assert [h["iteration"] for h in h1] == [h["iteration"] for h in h2] == [1, 2, 3]
    assert [h["total"] for h in h2] == pytest.approx([h["total"] for h in h1], rel=1e-5)
