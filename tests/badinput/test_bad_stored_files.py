"""Stored intermediate files (cams .npz) are checked when read: a damaged one is named, counted, and made
again by the stage that makes it; it is never scored or boxed as if it were valid."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
from badinput_corpus import DAMAGES, cam_file, damage_cams

from wsl import io
from wsl.errors import BadItem, UserError
from wsl.layout import RunLayout
from wsl.stages import boxes, cams, eval, seeds

RUN = "toy-small_cnn"


@pytest.mark.parametrize("how", DAMAGES)
def test_every_damage_is_named_by_the_reader(tmp_path, how):
    path = tmp_path / "x.npz"
    cam_file(path)
    assert io.is_complete_npz(path, num_classes=6)
    words = damage_cams(path, how)
    with pytest.raises(BadItem) as e:
        io.load_cams(path, num_classes=6)
    assert str(path) in str(e.value) and words in str(e.value), str(e.value)
    assert not io.is_complete_npz(path, num_classes=6)


def test_maps_of_a_downscaled_huge_image_are_valid(tmp_path):
    """stage=cams stores the maps of a 6000x4000 photo downscaled to max_side=1024 at stride 4: valid."""
    path = tmp_path / "big.npz"
    io.save_cams(path, np.array([1]), np.ones((1, 256, 171), np.float32), np.zeros(6), (6000, 4000))
    assert io.check_cams(path, 6)["image_size"].tolist() == [6000, 4000]


@pytest.fixture(scope="module")
def made(tmp_path_factory, trained_root, compose_at):
    """A run with the maps of the first 8 val images (module-scoped: copied by each test)."""
    out = tmp_path_factory.mktemp("stored")
    shutil.copytree(trained_root, out, dirs_exist_ok=True)
    cams.run(compose_at(["stage=cams", "num_workers=0", "stage.limit=8"], out))
    return out


@pytest.fixture
def run(made, tmp_path):
    shutil.copytree(made, tmp_path / "out")
    return tmp_path / "out"


def _damage(run, *hows: str) -> dict[str, str]:
    folder = RunLayout(run / RUN).cams("gradcam", "val")
    files = sorted(folder.glob("*.npz"))
    return {p.stem: (damage_cams(p, how), how)[0] for p, how in zip(files, hows)}


def test_cams_makes_damaged_files_again(run, compose_at, caplog):
    damaged = _damage(run, "nan_maps", "missing_maps", "fewer_maps", "truncated")
    with caplog.at_level(logging.WARNING):
        metrics = cams.run(compose_at(["stage=cams", "num_workers=0", "stage.limit=8"], run))
    assert metrics["images"] == 4  # only the damaged ones were made again
    folder = RunLayout(run / RUN).cams("gradcam", "val")
    assert all(io.is_complete_npz(folder / f"{i}.npz", 6) for i in damaged)
    named = [m for m in caplog.messages if "made again" in m]
    assert len(named) == 4 and all(any(f"{i}.npz" in m for m in named) for i in damaged)


def test_boxes_count_damaged_files_and_stop_past_max_failed(run, compose_at):
    damaged = _damage(run, "nan_maps", "truncated")
    with pytest.raises(UserError, match=r"boxes gradcam/val: 2 of 24 items failed .* stage.max_failed=0.01"):
        boxes.run(compose_at(["stage=boxes"], run))
    m = boxes.run(compose_at(["stage=boxes", "stage.max_failed=0.1"], run))
    assert (m["images"], m["failed"], m["missing"]) == (6, 2, 16)
    manifest = json.loads(RunLayout.manifest(RunLayout(run / RUN).boxes("gradcam", "val")).read_text())
    assert manifest["counts"]["failed"] == 2 and set(manifest["failed_items"]) == set(damaged)
    assert "non-finite" in manifest["failed_items"][next(iter(damaged))]


def test_seeds_count_damaged_files(run, compose_at):
    damaged = _damage(run, "inf_logits", "transposed_maps")
    cfg = compose_at(
        ["stage=seeds", "stage.split=val", "stage.limit=8", "stage.crf_processes=0", "stage.max_failed=0.25"],
        run,
    )
    m = seeds.run(cfg)
    assert (m["done"], m["failed"]) == (6, 2)
    manifest = json.loads(RunLayout.manifest(RunLayout(run / RUN).seeds("gradcam", "val")).read_text())
    assert set(manifest["failed_items"]) == set(damaged)


def test_eval_never_scores_nan_maps(run, compose_at):
    damaged = _damage(run, "nan_maps")
    cfg = compose_at(["stage=eval", "stage.max_failed=0.05"], run)
    res = eval.run(cfg)
    assert res["localization"]["failed"] == 1 and res["localization"]["images"] == 7
    assert list(res["localization"]["failed_items"]) == list(damaged)
    for task in ("localization", "segmentation"):
        manifest = json.loads(
            RunLayout.manifest(RunLayout(run / RUN).eval("gradcam", "val", task)).read_text()
        )
        assert manifest["counts"]["failed"] == 1 and list(manifest["failed_items"]) == list(damaged)
