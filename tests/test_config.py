"""Every YAML of every group composes, resolves and instantiates through Hydra's compose API; the stage
table matches conf/stage; bad values are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from wsl.config_check import ConfigError, check_config
from wsl.run import CONF_DIR
from wsl.stages import STAGES

GROUPS = ("dataset", "model", "segmodel", "cam", "stage", "paths", "hydra")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"


def test_stage_table_matches_conf_both_ways():
    assert set(options("stage")) == set(STAGES)
    for name in STAGES:
        assert OmegaConf.load(CONF_DIR / "stage" / f"{name}.yaml").name == name


def _dataset_overrides(name: str, data_root: Path) -> list[str]:
    toy = data_root / "toy"
    if name == "voc":
        return [
            f"dataset.loader.root={toy}/VOCdevkit/VOC2012",
            "dataset.num_classes=6",
            "dataset.class_names=[ellipse,rectangle,triangle,star,boat,water]",
        ]
    if name == "coco":
        return [
            f"dataset.loader.root={toy}",
            "dataset.loader.ann_file='annotations/instances_{split}.json'",
            "dataset.loader.image_dir=VOCdevkit/VOC2012/JPEGImages",
            "dataset.num_classes=6",
            "dataset.class_names=[ellipse,rectangle,triangle,star,boat,water]",
        ]
    if name == "folder":
        return [
            f"dataset.loader.root={data_root / 'folder'}",
            "dataset.num_classes=6",
            "dataset.class_names=[ellipse,rectangle,triangle,star,boat,water]",
        ]
    return []


@pytest.fixture(scope="module")
def folder_root(data_root: Path) -> Path:
    """A folder dataset made from a few toy images."""
    from wsl import io
    from wsl.data.toy import TOY_CLASSES
    from wsl.data.voc import VOCDataset

    voc = VOCDataset(data_root / "toy/VOCdevkit/VOC2012", split="train", class_names=list(TOY_CLASSES))
    root = data_root / "folder"
    if not root.exists():
        rows = ["id,labels"]
        for i in range(6):
            io.write_image(root / "images" / f"{voc.ids[i]}.png", voc.load_image(i))
            names = [voc.class_names[k] for k in range(6) if voc.labels()[i, k] > 0]
            rows.append(f"{voc.ids[i]},{';'.join(names)}")
        io.write_text(root / "labels.csv", "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("group", ["dataset", "model", "segmodel", "cam", "stage"])
def test_every_option_composes_resolves_instantiates(group, data_root, folder_root, compose):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "dataset":
            overrides += _dataset_overrides(option, data_root)
        cfg = compose(overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        check_config(cfg, CONF_DIR, choices={group: option})
        if group == "dataset":
            ds = instantiate(cfg.dataset.loader, split=cfg.dataset.train_split)
            assert len(ds) > 0 and len(ds.class_names) == cfg.dataset.num_classes
        elif group in ("model", "segmodel"):
            net = instantiate(getattr(cfg, group).build)
            assert sum(p.numel() for p in net.parameters()) > 0
        elif group == "cam":
            from wsl.cam import METHODS

            assert cfg.cam.method in METHODS and cfg.cam.name == option
        elif group == "stage":
            assert cfg.stage.name == option


def test_run_folder_is_plain_keys(compose, tmp_path):
    cfg = compose(["model=resnet18"])
    assert cfg.run == "toy-resnet18" and cfg.run_dir == f"{tmp_path}/toy-resnet18"
    assert compose(["run=mine"]).run_dir == f"{tmp_path}/mine"


def test_default_paths_are_at_repo_root_whatever_the_cwd(monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir

    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config")
    repo = str(CONF_DIR.parent)
    assert cfg.paths.output_root == f"{repo}/outputs" and cfg.paths.data_root == f"{repo}/data"
    assert cfg.dataset.name == "toy"


@pytest.mark.parametrize(
    "override,message",
    [
        ("stage.batch_size=abc", "stage.batch_size: expected int"),
        ("stage.flip=maybe", "stage.flip: expected bool"),
        ("stage.scales=3", "stage.scales: expected a list"),
        ("cam.relu=1", "cam.relu: expected bool"),
        ("seed=x", "seed: expected int"),
    ],
)
def test_wrong_type_is_one_clear_line(override, message, compose):
    cfg = compose(["stage=cams", override])
    with pytest.raises(ConfigError) as e:
        check_config(cfg, CONF_DIR, choices={"stage": "cams", "cam": "gradcam"})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_choice_outside_allowed_values(compose):
    cfg = compose(["stage=boxes", "stage.box_mode=biggest"])
    with pytest.raises(ConfigError, match="stage.box_mode=biggest: not one of largest, all"):
        check_config(cfg, CONF_DIR, choices={"stage": "boxes"})


def test_float_accepts_int(compose):
    cfg = compose(["stage=boxes", "stage.threshold=1"])
    check_config(cfg, CONF_DIR, choices={"stage": "boxes"})
