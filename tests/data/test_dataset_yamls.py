"""Every conf/dataset option (composed with its shared bases) resolves and instantiates, with its roots
pointed at a generated toy tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from wsl import CONF_DIR, io
from wsl.config_schema import register_schemas
from wsl.data import WSLDataset
from wsl.data.toy import TOY_CLASSES

CONF = CONF_DIR / "dataset"
KEYS = {"name", "num_classes", "class_names", "train_split", "val_split", "mean", "std", "prepare", "loader",
        "min_side", "max_side"}  # fmt: skip

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def compose(name: str, data_root: Path, **overrides) -> DictConfig:
    """The real configuration with ``dataset=<name>`` and its data under ``data_root``, then ``overrides``."""
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"dataset={name}", f"paths.data_root={data_root}"])
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def check_loaders(cfg, n_classes: int) -> None:
    assert set(cfg.dataset) == KEYS
    assert cfg.dataset.num_classes == len(cfg.dataset.class_names) == n_classes
    for split in (cfg.dataset.train_split, cfg.dataset.val_split):
        ds = instantiate(cfg.dataset.loader, split=split, with_masks=True, with_boxes=True)
        assert isinstance(ds, WSLDataset) and len(ds) > 0 and ds.num_classes == n_classes
        s = ds[0]
        assert s["error"] is None and s["mask"].shape == s["image"].shape[:2]


def test_all_dataset_yamls_are_tested() -> None:
    options = {p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("_")}  # _*: shared bases
    assert options == {"toy", "toy_coco", "voc", "coco", "folder"}


@pytest.mark.parametrize("name", ["toy", "toy_coco"])
def test_toy_yamls(name: str, toy_root: Path, small_toy: dict[str, int]) -> None:
    cfg = compose(name, toy_root.parent, seed=small_toy["seed"])
    assert cfg.dataset.class_names == list(TOY_CLASSES)
    kw = {k: v for k, v in small_toy.items() if k != "seed"}
    assert instantiate(cfg.dataset.prepare, **kw) == toy_root  # already there: returns at once
    check_loaders(cfg, len(TOY_CLASSES))


def test_voc_yaml(toy_root: Path) -> None:
    cfg = compose("voc", toy_root, **{"dataset.class_names": list(TOY_CLASSES), "dataset.num_classes": 6})
    assert cfg.dataset.prepare is None and cfg.dataset.loader.root == f"{toy_root}/VOCdevkit/VOC2012"
    assert len(OmegaConf.load(CONF / "voc.yaml").class_names) == 20
    check_loaders(cfg, len(TOY_CLASSES))


def test_coco_yaml(toy_root: Path) -> None:
    raw = OmegaConf.load(CONF / "coco.yaml")
    assert len(raw.class_names) == raw.num_classes == 80 and raw.loader.image_dir == "{split}2014"
    over = {
        "dataset.loader.root": str(toy_root),
        "dataset.loader.ann_file": "annotations/instances_{split}.json",
        "dataset.loader.image_dir": "VOCdevkit/VOC2012/JPEGImages",
        "dataset.class_names": list(TOY_CLASSES),
        "dataset.num_classes": 6,
    }
    check_loaders(compose("coco", toy_root.parent, **over), len(TOY_CLASSES))


def test_folder_yaml(tmp_path: Path, toy_root: Path) -> None:
    """A folder dataset built from toy images: mandatory keys first, then a full instantiation."""
    cfg = compose("folder", tmp_path)
    assert OmegaConf.is_missing(cfg.dataset, "num_classes") and OmegaConf.is_missing(
        cfg.dataset, "class_names"
    )
    voc = toy_root / "VOCdevkit" / "VOC2012"
    root = tmp_path / "folder"
    rows = ["id,labels"]
    for split in ("train", "val"):
        ids = io.read_id_list(voc / "ImageSets" / "Segmentation" / f"{split}.txt")[:3]
        io.write_text(root / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        for i in ids:
            (root / "images").mkdir(parents=True, exist_ok=True)
            (root / "images" / f"{i}.jpg").write_bytes((voc / "JPEGImages" / f"{i}.jpg").read_bytes())
            mask = io.read_label_png(voc / "SegmentationClass" / f"{i}.png")
            io.write_label_png(root / "masks" / f"{i}.png", mask)
            names = [TOY_CLASSES[k - 1] for k in np.unique(mask) if 0 < k < 255]
            rows.append(f"{i},{';'.join(names)}")
    io.write_text(root / "labels.csv", "\n".join(rows) + "\n")
    io.write_text(root / "boxes.csv", "id,class,x0,y0,x1,y1\n")
    cfg = compose("folder", tmp_path, **{"dataset.class_names": list(TOY_CLASSES), "dataset.num_classes": 6})
    check_loaders(cfg, len(TOY_CLASSES))
