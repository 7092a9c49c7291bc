"""stage=explain: one picture per image with the top classes' overlays; bad paths and images."""

from __future__ import annotations

import shutil

import pytest

from wsl import io
from wsl.errors import UserError
from wsl.layout import RunLayout
from wsl.run import run_stage
from wsl.stages import explain


def test_explain_a_folder_and_one_image(trained, data_root, compose_at, tmp_path):
    jpgs = sorted((data_root / "toy/VOCdevkit/VOC2012/JPEGImages").glob("*.jpg"))[:2]
    folder = tmp_path / "mine"
    folder.mkdir()
    for p in jpgs:
        shutil.copy(p, folder / p.name)
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    res = explain.run(compose_at(["stage=explain", f"stage.image={folder}", "stage.top_k=2"], trained))
    assert res["images"] == 2 and res["failed"] == 1
    out = RunLayout(trained / "toy-small_cnn").explain()
    for p in jpgs:
        picture = io.read_image(out / f"{p.stem}.png")
        h, w = io.read_image(p).shape[:2]
        assert picture.shape[1] >= 3 * w and picture.std() > 10  # the image + 2 overlays side by side
        names = [name for name, _ in res["classes"][p.name]]
        assert len(names) == 2 and set(names) <= {"ellipse", "rectangle", "triangle", "star", "boat", "water"}
        assert all(0 <= prob <= 1 for _, prob in res["classes"][p.name])
    one = explain.run(compose_at(["stage=explain", f"stage.image={jpgs[0]}", "cam=layercam"], trained))
    assert one["images"] == 1 and len(one["classes"][jpgs[0].name]) == 3


def test_explain_missing_image_is_one_line(trained, compose_at, tmp_path):
    with pytest.raises(UserError, match="no such image or folder"):
        run_stage(compose_at(["stage=explain", f"stage.image={tmp_path / 'nope.jpg'}"], trained))
    with pytest.raises(UserError, match="holds no"):
        explain.run(compose_at(["stage=explain", f"stage.image={tmp_path}"], trained))
