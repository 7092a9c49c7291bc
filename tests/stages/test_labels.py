"""stage=labels on a (random) SEC network checkpoint: PNGs, the list file, resume, restriction to labels."""

from __future__ import annotations

import numpy as np
import torch

from wsl import io
from wsl.segmentation import label_job
from wsl.stages import labels as labels_stage
from wsl.stages.common import build_dataset, build_segmodel, layout, segmodel_meta

FAST = ["segmodel.input_size=64", "segmodel.build.width=8", "stage.crf_processes=0", "stage.limit=3"]


def _checkpoint(cfg) -> None:
    torch.manual_seed(0)
    state = {"model": build_segmodel(cfg).state_dict(), "iteration": 1, **segmodel_meta(cfg, (8, 8))}
    io.save_checkpoint(layout(cfg).sec_network(cfg.cam.name), state)


def test_labels_pngs_list_and_resume(compose):
    cfg = compose(["stage=labels", "run=t", *FAST, "stage.list_label_prefix=pseudo/"])
    _checkpoint(cfg)
    m = labels_stage.run(cfg)
    assert (m["done"], m["skipped"], m["failed"], m["listed"]) == (3, 0, 0, 3)
    ds = build_dataset(cfg, "train")
    folder = layout(cfg).labels(cfg.cam.name, "train")
    lines = (folder / "train.txt").read_text().splitlines()
    assert lines == [f"JPEGImages/{i}.jpg pseudo/{i}.png" for i in ds.ids[:3]]
    for i in range(3):
        pred = io.read_label_png(folder / f"{ds.ids[i]}.png")
        assert pred.shape == ds.image_size(i)
        assert set(np.unique(pred)) <= {0, *(np.flatnonzero(ds.labels()[i] > 0) + 1)}  # restricted
    assert 0 <= m["miou"] <= 1 and m["labels"]["images"] == 3
    again = labels_stage.run(cfg)
    assert (again["done"], again["skipped"], again["listed"]) == (0, 3, 3)


def test_label_job_crf_and_keys():
    """Keys map argmax channels to labels; the CRF keeps a confident, colour-consistent map as it is."""
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, 4:] = 200
    probs = np.full((2, 6, 8), 0.05, np.float32)
    probs[0, :, :4] = probs[1, :, 4:] = 0.95
    keys = np.array([0, 5])
    want = np.where(np.arange(8) < 4, 0, 5)[None].repeat(6, 0)
    for crf in (False, True):
        np.testing.assert_array_equal(label_job(image, probs, keys, crf, 1e-5, 10), want)
