"""The shared dataset interface: abstract base, sample format, collate, DataLoader use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsl.data import WSLDataset, collate_samples
from wsl.data.toy import TOY_CLASSES
from wsl.data.voc import VOCDataset


def test_base_is_abstract() -> None:
    with pytest.raises(TypeError):
        WSLDataset("train")  # type: ignore[abstract]


def test_collate_keeps_lists() -> None:
    batch = [{"id": "a", "image": np.zeros((2, 3, 3))}, {"id": "b", "image": None}]
    out = collate_samples(batch)
    assert out["id"] == ["a", "b"] and out["image"][1] is None and out["image"][0].shape == (2, 3, 3)
    assert collate_samples([]) == {}


def test_sample_format_and_dataloader(toy_root: Path) -> None:
    ds = VOCDataset(
        toy_root / "VOCdevkit/VOC2012", "val", with_masks=True, with_boxes=True, class_names=TOY_CLASSES
    )
    s = ds[0]
    assert set(s) == {
        "index",
        "id",
        "image",
        "label",
        "error",
        "mask",
        "boxes",
        "box_labels",
        "box_difficult",
    }
    assert s["index"] == 0 and s["id"] == ds.ids[0] and s["label"].shape == (len(TOY_CLASSES),)
    with pytest.raises(IndexError):
        ds[len(ds)]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_samples, num_workers=0)
    batches = list(loader)
    sizes = {img.shape[:2] for b in batches for img in b["image"]}
    assert sum(len(b["id"]) for b in batches) == len(ds) and len(sizes) > 1, "images of different sizes"
    assert repr(ds).startswith("VOCDataset(") and ds.num_classes == len(TOY_CLASSES)
