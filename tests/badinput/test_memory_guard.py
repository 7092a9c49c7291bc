"""The memory guard (``dataset.max_side``): a 6000 x 6000 photo is downscaled for the model, its maps and
boxes still refer to the original image, and the process stays far from the 6 GB it took unguarded."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import pytest
from badinput_corpus import encode, folder_overrides, toy_folder
from badinput_corpus import write_folder as write

from wsl import REPO_ROOT, io
from wsl.layout import RunLayout
from wsl.stages import boxes

SIDE = 6000
# Peak resident memory of the whole `python -m wsl.run stage=cams` process (torch included; about 0.7 GB
# on small images): the unguarded 6000 x 6000 photo took about 6 GB through small_cnn.
PEAK_LIMIT_MB = 2500

MEASURE = """
import atexit, resource, runpy, sys
atexit.register(lambda: print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))
sys.argv = ["wsl.run", *sys.argv[1:]]
runpy.run_module("wsl.run", run_name="__main__")
"""


@pytest.mark.slow
def test_a_huge_photo_is_downscaled_for_the_model(data_root, trained_root, compose_at, tmp_path):
    data = tmp_path / "data"
    images, labels = toy_folder(data / "folder", data_root / "toy/VOCdevkit/VOC2012", 2)
    small = io.read_image(data_root / "toy/VOCdevkit/VOC2012/JPEGImages" / f"{next(iter(images))}.jpg")
    huge = cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    images["huge"], labels["huge"] = (".jpg", encode(huge, "JPEG", quality=90)), labels[next(iter(images))]
    write(data / "folder", images, labels)
    del huge
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    args = ["stage=cams", *folder_overrides(data, ckpt), f"paths.output_root={tmp_path / 'out'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", MEASURE, *args], env=env, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    peak_mb = int(r.stderr.split("PEAK_KB")[-1].split()[0]) / 1024
    assert peak_mb < PEAK_LIMIT_MB, f"peak resident memory {peak_mb:.0f} MB"

    cams = RunLayout(tmp_path / "out" / "folder-small_cnn").cams("gradcam", "val")
    rec = io.load_cams(cams / "huge.npz", 6)
    assert rec["image_size"].tolist() == [SIDE, SIDE]  # the original size
    assert rec["maps"].shape[1:] == (256, 256)  # 1024 px (dataset.max_side) at stride 4

    cfg = compose_at(["stage=boxes", *folder_overrides(data, ckpt)], tmp_path / "out", data)
    boxes.run(cfg)
    records = io.read_json(RunLayout(tmp_path / "out" / "folder-small_cnn").boxes_file("gradcam", "val"))
    image_id = {k: n + 1 for n, k in enumerate(images)}["huge"]  # folder: COCO ids in labels.csv order
    big = [r["bbox"] for r in records if r["image_id"] == image_id]
    assert big and all(0 <= x and 0 <= y and x + w <= SIDE and y + h <= SIDE for x, y, w, h in big)
    assert max(x + w for x, y, w, h in big) > 1024, "boxes are in the original image's pixels"
