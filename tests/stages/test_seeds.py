"""stage=seeds on fabricated CAM files over (a copy of) the small toy dataset."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from wsl import io
from wsl.segmentation import seed_job
from wsl.stages import seeds as seeds_stage
from wsl.stages.common import build_dataset, layout


@pytest.fixture
def toy(tmp_path, data_root, compose):
    """``(compose, data root, output root)`` over a private copy of the toy dataset (tests corrupt it)."""
    shutil.copytree(data_root / "toy", tmp_path / "data" / "toy")
    return compose, tmp_path / "data", tmp_path


def _cfg(toy, *overrides):
    compose, data, _ = toy
    return compose(
        [
            "stage=seeds",
            "run=t",
            "stage.crf_processes=0",
            "stage.limit=6",
            *overrides,
            f"paths.data_root={data}",
        ]
    )


def _bands(classes: list[int], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand-made maps: class k is 1.0 on row band 2k, every map is 0.1 on band 2k+1 (unsure), 0 below.

    Returns the maps (K, H, W) and the expected seeds (class k -> k + 1, unsure 255, background 0).
    """
    maps = np.zeros((len(classes), h, w), np.float32)
    expected = np.zeros((h, w), np.uint8)
    edges = np.linspace(0, h, 2 * len(classes) + 2).astype(int)
    for k, c in enumerate(classes):
        maps[k, edges[2 * k] : edges[2 * k + 1]] = 1.0
        expected[edges[2 * k] : edges[2 * k + 1]] = c + 1
        maps[:, edges[2 * k + 1] : edges[2 * k + 2]] = 0.1  # above bg_thresh 0.05, below fg_thresh 0.2
        expected[edges[2 * k + 1] : edges[2 * k + 2]] = 255
    return maps, expected


def _fake_cams(cfg, maps_of) -> dict[str, np.ndarray]:
    """CAM files at full resolution for the first images of the train split; returns expected seeds."""
    ds = build_dataset(cfg, "train")
    folder = layout(cfg).cams(cfg.cam.name, "train")
    expected = {}
    for i in range(cfg.stage.limit):
        labelled = np.flatnonzero(ds.labels()[i] > 0).tolist()
        maps, expected[ds.ids[i]] = maps_of(ds, i, labelled)
        unlabelled = [k for k in range(ds.num_classes) if k not in labelled][:1]  # a "predicted" extra class
        maps = np.concatenate([maps, np.ones((len(unlabelled), *maps.shape[1:]), np.float32)])
        io.save_cams(
            folder / f"{ds.ids[i]}.npz",
            np.array(labelled + unlabelled),
            maps,
            np.zeros(ds.num_classes),
            ds.image_size(i),
        )
    io.write_json(folder / "manifest.json", {})
    return expected


def _read(cfg, image_id: str) -> np.ndarray:
    return io.read_label_png(layout(cfg).seeds(cfg.cam.name, "train") / f"{image_id}.png")


def test_hand_made_maps_give_expected_seeds_resume_and_overwrite(toy):
    cfg = _cfg(toy)
    expected = _fake_cams(cfg, lambda ds, i, labelled: _bands(labelled, *ds.image_size(i)))
    m = seeds_stage.run(cfg)
    assert (m["done"], m["skipped"], m["failed"]) == (6, 0, 0)
    for image_id, want in expected.items():
        np.testing.assert_array_equal(_read(cfg, image_id), want)
    assert set(m["seeds"]["precision"]) == {"background", *cfg.dataset.class_names}
    assert 0 < m["coverage"] < 1
    # Resume: existing PNGs are trusted and skipped (a tampered one stays as it is).
    first = next(iter(expected))
    path = layout(cfg).seeds(cfg.cam.name, "train") / f"{first}.png"
    io.write_label_png(path, np.full_like(expected[first], 255))
    m = seeds_stage.run(cfg)
    assert (m["done"], m["skipped"]) == (0, 6) and (_read(cfg, first) == 255).all()
    m = seeds_stage.run(_cfg(toy, "stage.overwrite=true"))
    assert m["done"] == 6
    np.testing.assert_array_equal(_read(cfg, first), expected[first])


def test_gt_maps_give_perfect_seed_scores(toy):
    """Maps equal to the GT masks: every seed is right and every non-void pixel is labelled."""
    cfg = _cfg(toy)

    def from_gt(ds, i, labelled):
        mask = ds.load_mask(i)
        return np.stack([(mask == c + 1).astype(np.float32) for c in labelled]), None

    _fake_cams(cfg, from_gt)
    s = seeds_stage.run(cfg)["seeds"]
    assert s["images"] == 6 and s["coverage"] == pytest.approx(1.0) and s["miou"] == pytest.approx(1.0)
    assert all(p in (None, 1.0) for p in s["precision"].values())


def test_corrupt_image_is_skipped_and_counted(toy):
    cfg = _cfg(toy, "stage.max_failed=0.2")
    expected = _fake_cams(cfg, lambda ds, i, labelled: _bands(labelled, *ds.image_size(i)))
    bad = next(iter(expected))
    (toy[1] / "toy" / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{bad}.jpg").write_bytes(b"not a jpeg")
    m = seeds_stage.run(cfg)
    assert (m["done"], m["failed"]) == (5, 1)
    assert not (layout(cfg).seeds(cfg.cam.name, "train") / f"{bad}.png").exists()


def test_irn_background(toy):
    cfg = _cfg(toy, "stage.limit=2", "stage.background=irn")
    _fake_cams(cfg, lambda ds, i, labelled: _bands(labelled, *ds.image_size(i)))
    assert seeds_stage.run(cfg)["done"] == 2
    ds = build_dataset(cfg, "train")
    allowed = {0, 255, *(np.flatnonzero(ds.labels()[0] > 0) + 1)}
    assert set(np.unique(_read(cfg, ds.ids[0]))) <= allowed


def test_saliency_background(toy):
    """SEC's saliency background from a random classifier: about the 10 % least salient pixels."""
    from hydra.utils import instantiate

    from wsl.errors import UserError

    cfg = _cfg(toy, "stage.limit=2")
    _fake_cams(cfg, lambda ds, i, labelled: _bands(labelled, *ds.image_size(i)))
    ds = build_dataset(cfg, "train")
    ckpt = toy[2] / "clf.pt"
    torch.manual_seed(0)
    model = instantiate(cfg.model.build)
    io.save_checkpoint(ckpt, {"model": model.state_dict()})
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    sal = ["stage.limit=2", "stage.background=saliency", "stage.overwrite=true", f"model.checkpoint={ckpt}"]
    for layer in ("null", convs[1]):  # the input image, an early convolution
        assert seeds_stage.run(_cfg(toy, *sal, f"stage.saliency_layer={layer}"))["done"] == 2
        seeds = _read(cfg, ds.ids[0])
        assert 0 < (seeds == 0).mean() <= 0.11
    # Before global average pooling the gradient is the same everywhere: refused, not silently all-background.
    with pytest.raises(UserError, match="spatially constant"):
        seeds_stage.run(_cfg(toy, *sal, f"stage.saliency_layer={cfg.model.target_layer}"))


def test_seed_job_argmax_overlap():
    maps = np.zeros((2, 2, 3), np.float32)
    maps[0] = [[1.0, 0.9, 0.0], [0.0, 0.0, 0.0]]
    maps[1] = [[0.5, 1.0, 0.0], [0.0, 0.0, 0.1]]
    rule = {
        "background": "threshold",
        "fg_thresh": 0.2,
        "bg_thresh": 0.05,
        "bg_fraction": 0.1,
        "overlap": "argmax",
        "irn_fg": 0.3,
        "irn_bg": 0.05,
    }
    seeds = seed_job(maps, np.array([1, 2]), np.zeros((2, 3, 3), np.uint8), None, rule)
    np.testing.assert_array_equal(seeds, [[1, 2, 0], [0, 0, 255]])


def test_missing_masks_skip_scoring_not_the_stage(toy):
    """A split where some GT masks are missing (VOC train_aug without SBD): seeds written, coverage only."""
    cfg = _cfg(toy)
    expected = _fake_cams(cfg, lambda ds, i, labelled: _bands(labelled, *ds.image_size(i)))
    mask = toy[1] / "toy" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / f"{next(iter(expected))}.png"
    mask.unlink()
    m = seeds_stage.run(cfg)
    assert m["done"] == 6 and "seeds" not in m
    want = np.mean(np.concatenate([(e != 255).ravel() for e in expected.values()]))
    assert m["coverage"] == pytest.approx(want)
