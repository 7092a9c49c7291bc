"""Rule 1 (README "Bad input") in every per-image stage, through their ``run(cfg)`` on a folder dataset:
bad items skipped with one warning each, counted in the manifest with their ids and reasons; more than
``stage.max_failed`` of the split is one UserError line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from badinput_corpus import (
    BROKEN_IMAGES,
    TOY6,
    encode,
    exif_rotated_jpeg,
    folder_overrides,
    png16_gray,
    toy_folder,
)
from badinput_corpus import write_folder as write

from wsl import io
from wsl.errors import UserError
from wsl.layout import RunLayout
from wsl.stages import cams, eval, labels, train
from wsl.stages.common import build_segmodel, layout, segmodel_meta

RUN = "folder-small_cnn"
N_GOOD = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, data_root):
    """A folder dataset: 10 toy images (one stored sideways with EXIF Orientation=6, one 16-bit), then every
    broken image of the corpus; returns ``(data root, ids of the broken ones, {id: decoded (H, W)})``."""
    data = tmp_path_factory.mktemp("folder_data")
    images, labels_ = toy_folder(data / "folder", data_root / "toy/VOCdevkit/VOC2012", N_GOOD)
    first, second = list(images)[:2]
    from wsl.io import read_image

    rgb = read_image(data_root / "toy/VOCdevkit/VOC2012/JPEGImages" / f"{first}.jpg")
    images[first] = (".jpg", exif_rotated_jpeg(np.ascontiguousarray(np.rot90(rgb)), 6))  # shown as rgb
    images[second] = (".png", png16_gray(150, 170)[0])
    for name, (suffix, make, _) in BROKEN_IMAGES.items():
        images[name], labels_[name] = (suffix, make()), ["star"]
    write(data / "folder", images, labels_)
    return data, sorted(BROKEN_IMAGES), {first: rgb.shape[:2], second: (150, 170)}


def _cfg(compose_at, corpus, trained_root, out, *extra):
    ckpt = RunLayout(trained_root / "toy-small_cnn").classifier()
    return compose_at(folder_overrides(corpus[0], ckpt, *extra), out, corpus[0])


def _manifest(folder) -> dict:
    return json.loads(RunLayout.manifest(folder).read_text())


def test_cams_skips_counts_and_names_every_broken_image(corpus, trained_root, compose_at, tmp_path, caplog):
    with pytest.raises(UserError) as e:
        cams.run(_cfg(compose_at, corpus, trained_root, tmp_path, "stage=cams"))
    assert str(e.value).startswith(
        "cams gradcam/val: 8 of 18 items failed (44.4%), more than stage.max_failed=0.01"
    )
    assert "\n" not in str(e.value)
    folder = RunLayout(tmp_path / RUN).cams("gradcam", "val")
    assert not RunLayout.manifest(folder).exists()  # a split with too many bad items is never complete
    caplog.clear()
    cams.run(_cfg(compose_at, corpus, trained_root, tmp_path, "stage=cams", "stage.max_failed=0.5"))
    m = _manifest(folder)
    assert m["counts"] == {"done": 0, "skipped": N_GOOD, "failed": 8}  # the good ones were kept
    assert sorted(m["failed_items"]) == corpus[1]
    for name, (suffix, _, words) in BROKEN_IMAGES.items():
        assert f"{name}{suffix}" in m["failed_items"][name] and words in m["failed_items"][name]
        assert sum(f"skipping {name}:" in r for r in caplog.messages) == 1  # one warning each
    sizes = {p.stem: tuple(io.load_cams(p)["image_size"].tolist()) for p in folder.glob("*.npz")}
    assert len(sizes) == N_GOOD and all(sizes[i] == hw for i, hw in corpus[2].items())  # as decoded


def test_train_counts_the_broken_images_of_both_splits(corpus, trained_root, compose_at, tmp_path):
    cfg = _cfg(
        compose_at,
        corpus,
        trained_root,
        tmp_path,
        "stage=train",
        "stage.epochs=1",
        "stage.batch_size=6",
        "stage.max_failed=0.5",
    )  # 18 items: no batch dropped
    train.run(cfg)
    m = _manifest(RunLayout(tmp_path / RUN).train())
    assert (
        m["counts"]["failed"] == 16
        and sorted(m["failed_items"]) == sorted(m["val_failed_items"]) == corpus[1]
    )
    with pytest.raises(
        UserError,
        match=r"train split train: \d of 18 items failed \(\d+.\d%\), more than stage.max_failed=0.01",
    ):
        train.run(
            _cfg(
                compose_at,
                corpus,
                trained_root,
                tmp_path / "again",
                "stage=train",
                "stage.epochs=1",
                "stage.batch_size=4",
            )
        )


def test_labels_skip_and_count(corpus, trained_root, compose_at, tmp_path):
    fast = ["stage=labels", "segmodel.input_size=64", "segmodel.build.width=8", "stage.crf_processes=0"]
    cfg = _cfg(compose_at, corpus, trained_root, tmp_path, *fast, "stage.max_failed=0.5")
    torch.manual_seed(0)
    state = {"model": build_segmodel(cfg).state_dict(), "iteration": 1, **segmodel_meta(cfg, (8, 8))}
    io.save_checkpoint(layout(cfg).sec_network(cfg.cam.name), state)
    m = labels.run(cfg)
    assert (m["done"], m["failed"], m["listed"]) == (N_GOOD, 8, N_GOOD)
    manifest = _manifest(layout(cfg).labels("gradcam", "train"))
    assert sorted(manifest["failed_items"]) == corpus[1]


def test_eval_counts_bad_masks(corpus, trained_root, compose_at, tmp_path):
    """Masks of the wrong size, with values that are no class, in RGB: counted skips, exit 0 (in-process
    here: the CLI tests check the exit code)."""
    data = corpus[0]
    ids = sorted(p.stem for p in (data / "folder" / "images").iterdir() if p.stem not in corpus[1])
    out = tmp_path / "out"
    cams.run(_cfg(compose_at, corpus, trained_root, out, "stage=cams", "stage.max_failed=0.5"))
    from wsl.data.folder import FolderDataset

    ds = FolderDataset(data / "folder", "val", class_names=TOY6)
    masks = data / "folder" / "masks"
    try:
        for i in ids:
            io.write_label_png(masks / f"{i}.png", np.zeros(ds.image_size(ds.ids.index(i)), np.uint8))
        io.write_label_png(masks / f"{ids[0]}.png", np.zeros((3, 3), np.uint8))
        io.write_label_png(
            masks / f"{ids[1]}.png", np.full(ds.image_size(ds.ids.index(ids[1])), 50, np.uint8)
        )
        io.write_bytes(
            masks / f"{ids[2]}.png",
            encode(np.zeros((*ds.image_size(ds.ids.index(ids[2])), 3), np.uint8), "PNG"),
        )
        res = eval.run(
            _cfg(
                compose_at,
                corpus,
                trained_root,
                out,
                "stage=eval",
                "stage.task=segmentation",
                "stage.max_failed=0.9",
            )
        )
    finally:
        for p in masks.iterdir():
            p.unlink()
        masks.rmdir()
    failed = res["segmentation"]["cams"]["failed_items"]
    assert set(failed) == set(ids[:3])  # the broken images have no CAM file: missing, not scored
    assert "mask of 3x3" in failed[ids[0]] and "values [50]" in failed[ids[1]] and "palette" in failed[ids[2]]
