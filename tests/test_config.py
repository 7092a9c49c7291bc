"""conf/ through Hydra's compose API: every option of every group composes to exactly the expected keys and
values, resolves and instantiates; the schemas of wsl/config_schema.py reject wrong types, unknown keys,
bad choices and out-of-range values with one clear line; the experiment group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import wsl.config_schema
import wsl.run
from wsl.config_schema import STAGE_SCHEMAS, CamMethod, register_schemas, validate_config
from wsl.errors import UserError
from wsl.run import CONF_DIR
from wsl.stages import STAGES

GROUPS = ("dataset", "model", "segmodel", "cam", "stage", "paths", "hydra", "experiment")
# The composed values of every option (tests/config_expected.json), with paths.data_root=/D and
# paths.output_root=/O. Update that file when a default changes on purpose.
EXPECTED = json.loads((Path(__file__).parent / "config_expected.json").read_text())
FOLDER = ["dataset.num_classes=2", "dataset.class_names=[a,b]"]  # folder's mandatory values (???)
MANDATORY = {"folder": FOLDER, "explain": ["stage.image=photo.jpg"]}  # options with a ??? value


def options(group: str) -> list[str]:
    """The options a user can select: conf/<group>/*.yaml except the `_`-prefixed shared bases."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def compose(overrides: list[str]) -> DictConfig:
    """The real configuration, paths at /D and /O (nothing is read or written)."""
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=["paths.data_root=/D", "paths.output_root=/O", *overrides])


def flat_keys(node: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in node.items():
        out |= flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}"}
    return out


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"
    assert set(options("cam")) == set(CamMethod)  # the schema's choices are conf/cam's options


def test_stage_table_matches_conf_and_schemas_both_ways():
    assert set(options("stage")) == set(STAGES) == set(STAGE_SCHEMAS)
    for name in STAGES:
        assert compose([f"stage={name}"]).stage.name == name


def test_options_cover_every_expected_value():
    expected = {g: set(v) for g, v in EXPECTED.items() if g != "root"}
    assert expected == {g: set(options(g)) for g in expected}


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in ("dataset", "model", "segmodel", "cam", "stage", "paths") for o in options(g)],
)
def test_every_option_composes_to_the_expected_keys_and_values(group, option):
    cfg = compose([f"{group}={option}", *MANDATORY.get(option, [])])
    got = OmegaConf.to_container(cfg[group], resolve=True, enum_to_str=True)
    want = EXPECTED[group][option]
    assert flat_keys(got) == flat_keys(want)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)  # values and int/float types
    validate_config(cfg)


def test_root_keys_and_values():
    cfg = compose([])
    root = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if not isinstance(v, dict)}
    assert root == EXPECTED["root"]
    assert set(cfg) == {"paths", "dataset", "model", "segmodel", "cam", "stage", *EXPECTED["root"]}


def _dataset_overrides(name: str, data_root: Path) -> list[str]:
    toy = data_root / "toy"
    six = ["dataset.num_classes=6", "dataset.class_names=[ellipse,rectangle,triangle,star,boat,water]"]
    if name == "voc":
        return [f"dataset.loader.root={toy}/VOCdevkit/VOC2012", *six]
    if name == "coco":
        return [
            f"dataset.loader.root={toy}",
            "dataset.loader.ann_file='annotations/instances_{split}.json'",
            "dataset.loader.image_dir=VOCdevkit/VOC2012/JPEGImages",
            *six,
        ]
    if name == "folder":
        return [f"dataset.loader.root={data_root / 'folder'}", *six]
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


@pytest.mark.parametrize("group", ["dataset", "model", "segmodel"])
def test_every_option_instantiates(group, data_root, folder_root, compose):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "dataset":
            overrides += _dataset_overrides(option, data_root)
        cfg = compose(overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        if group == "dataset":
            ds = instantiate(cfg.dataset.loader, split=cfg.dataset.train_split)
            assert len(ds) > 0 and len(ds.class_names) == cfg.dataset.num_classes
        else:
            net = instantiate(cfg[group].build)
            assert sum(p.numel() for p in net.parameters()) > 0


def test_run_folder_is_plain_keys(compose, tmp_path):
    cfg = compose(["model=resnet18"])
    assert cfg.run == "toy-resnet18" and cfg.paths.run_dir == f"{tmp_path}/toy-resnet18"
    assert compose(["run=mine"]).paths.run_dir == f"{tmp_path}/mine"
    assert "run_dir" not in cfg


def test_default_paths_are_at_repo_root_whatever_the_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config")
    repo = str(CONF_DIR.parent)
    assert cfg.paths.output_root == f"{repo}/outputs" and cfg.paths.data_root == f"{repo}/data"
    assert cfg.dataset.name == "toy"


def test_model_pretrained_is_the_one_switch():
    for model in ("resnet50", "vgg16"):
        cfg = compose([f"model={model}", "model.pretrained=true"])
        assert cfg.model.build.pretrained is True and cfg.model.build.arch == model
    assert compose(["model=resnet18"]).model.build.pretrained is False


def test_choices_compare_and_serialise_as_plain_strings():
    cfg = compose(["stage=eval"])
    assert cfg.stage.task == "all" and str(cfg.stage.task) == "all" and f"{cfg.cam.method}" == "gradcam"
    assert {"gradcam": 1}[cfg.cam.method] == 1
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert type(plain["stage"]["task"]) is str and type(plain["cam"]["method"]) is str
    as_json = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True)))  # StrEnum is a str
    assert as_json["stage"]["task"] == "all"


def test_register_schemas_is_idempotent():
    register_schemas()
    register_schemas()
    assert compose(["stage=boxes"]).stage.box_mode == "largest"


# ------------------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["stage.batch_size=abc"], "stage.batch_size=abc: expected int"),
        (["stage.flip=maybe"], "stage.flip=maybe: expected bool"),
        (["stage.scales=3"], "stage.scales=3: expected a list of float"),
        (["stage.limit=x"], "stage.limit=x: expected int or null"),
        (["cam.relu=abc"], "cam.relu=abc: expected bool"),
        (["seed=x"], "seed=x: expected int"),
        (["stage.batch_sizee=3"], "stage.batch_sizee=3: unknown key (did you mean stage.batch_size?)"),
        (["stage=sec", "stage.nonsense=1"], "stage.nonsense=1: unknown key, expected one of name, split,"),
        (["foo=1"], "foo=1: unknown key, expected one of paths, dataset"),
        (["stage=boxes", "stage.box_mode=biggest"], "stage.box_mode=biggest: expected one of largest, all"),
        (["stage=eval", "stage.task=both"], "stage.task=both: expected one of all, localization,"),
        (["cam.method=gradcam2"], "cam.method=gradcam2: expected one of cam, gradcam,"),
        (["cam=nope"], "cam=nope: expected one of ablationcam, cam, eigencam, eigengradcam,"),
        (["+experiment=nope"], "experiment=nope: expected one of coco_wsol, voc_irn, voc_sec"),
        (["stage.scales=[1,"], "stage.scales=[1,: cannot parse"),
    ],
)
def test_hydra_rejects_with_one_clear_line(overrides, message):
    with pytest.raises(Exception) as e:
        compose(overrides)
    line = wsl.config_schema.composition_error_line(e.value)
    assert line.startswith(f"invalid configuration: {message}"), line
    assert "\n" not in line and "_base" not in line


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["stage.batch_size=0"], "stage.batch_size=0: expected an int >= 1"),
        (["stage.stride=0"], "stage.stride=0: expected an int >= 1"),
        (["stage.top_k=-1"], "stage.top_k=-1: expected an int >= 0"),
        (["stage.limit=0"], "stage.limit=0: expected an int >= 1 or null"),
        (["stage.scales=[]"], "stage.scales=[]: expected a non-empty list of numbers > 0"),
        (["stage.scales=[1.0,-0.5]"], "stage.scales=[1.0, -0.5]: expected a non-empty list of numbers > 0"),
        (["stage.miou_threshold=1.5"], "stage.miou_threshold=1.5: expected a number in [0, 1]"),
        (["num_workers=-1"], "num_workers=-1: expected an int >= 0"),
        (["cam.batch_size=0"], "cam.batch_size=0: expected an int >= 1"),
        (["stage=train", "stage.epochs=0"], "stage.epochs=0: expected an int >= 1"),
        (["stage=sec", "segmodel.sec.iterations=0"], "stage.iterations=0: expected an int >= 1"),
        (["stage=sec", "stage.crf_processes=-2"], "stage.crf_processes=-2: expected an int >= 0"),
        (["stage=eval", "stage.box_acc_step=0"], "stage.box_acc_step=0.0: expected a number in (0, 1]"),
        (["stage=eval", "stage.sweep_step=1.5"], "stage.sweep_step=1.5: expected a number in (0, 1]"),
        (["stage=eval", "stage.sweep_start=0.7"], "stage.sweep_stop=0.6: expected >= stage.sweep_start=0.7"),
        (["stage=seeds", "stage.fg_thresh=2"], "stage.fg_thresh=2.0: expected a number in [0, 1]"),
        (["stage=boxes", "stage.threshold=50"], "stage.threshold=50.0: expected a number in [0, 1]"),
        (["stage=benchmark", "stage.methods=[gradcam,nope]"], "stage.methods=[gradcam, nope]: expected null"),
        (["device=gpu"], "device=gpu: expected auto, cpu, mps, cuda or cuda:<n>"),
        (["dataset=folder"], "dataset.num_classes=???: expected a value (mandatory)"),
        (["dataset=folder", "dataset.num_classes=3", "dataset.class_names=[a,b]"], "expected 3 names"),
    ],
)
def test_out_of_range_is_one_clear_line(overrides, message):
    cfg = compose(overrides)
    with pytest.raises(UserError) as e:
        validate_config(cfg)
    text = str(e.value)
    assert text.startswith("invalid configuration: ") and message in text and "\n" not in text, text


def test_every_problem_in_one_line():
    cfg = compose(["stage.batch_size=0", "stage.stride=0", "num_workers=-3"])
    with pytest.raises(UserError) as e:
        validate_config(cfg)
    assert str(e.value) == (
        "invalid configuration: stage.stride=0: expected an int >= 1; "
        "stage.batch_size=0: expected an int >= 1; num_workers=-3: expected an int >= 0"
    )


def test_in_range_values_pass():
    validate_config(compose(["stage=boxes", "stage.threshold_method=percentile", "stage.threshold=90"]))
    validate_config(compose(["stage.limit=null", "stage.scales=[0.5,1,2]", "device=cuda:1", "num_workers=0"]))


# ------------------------------------------------------------------------------------------ experiments


def test_experiment_stage_files_are_named_after_stages():
    for name in options("experiment"):
        folder = CONF_DIR / "experiment" / name
        assert {p.stem for p in folder.glob("*.yaml")} <= set(STAGES), folder


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_voc_sec(stage):
    cfg = compose(["+experiment=voc_sec", f"stage={stage}", *MANDATORY.get(stage, [])])
    validate_config(cfg)
    assert cfg.run == "voc_sec" and cfg.paths.run_dir == "/O/voc_sec"
    assert (cfg.dataset.name, cfg.dataset.train_split, cfg.model.name, cfg.segmodel.name, cfg.cam.method) == (
        "voc", "train_aug", "vgg16", "largefov", "cam",
    )  # fmt: skip
    assert cfg.model.build.pretrained is True and cfg.segmodel.build.pretrained is True
    assert cfg.segmodel.input_size == 321
    expected = {
        "seeds": {"background": "saliency", "saliency_layer": "features.17", "fg_thresh": 0.2,
                  "bg_fraction": 0.1, "overlap": "smaller"},
        "sec": {"iterations": 8000, "batch_size": 15, "lr": 0.001, "lr_step": 2000, "lr_gamma": 0.1,
                "momentum": 0.9, "weight_decay": 0.0005, "d_pos": 0.996, "d_neg": 0.0, "d_bg": 0.999,
                "crf_scale": 12.0, "crf_iterations": 10},
        "labels": {"crf": True, "crf_iterations": 10, "prob_floor": 1e-5, "scales": [1.0], "flip": False},
        "train": {"input_size": 321},
    }.get(stage, {})  # fmt: skip
    assert {k: OmegaConf.to_container(cfg.stage, resolve=True)[k] for k in expected} == expected


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_coco_wsol(stage):
    cfg = compose(["+experiment=coco_wsol", f"stage={stage}", *MANDATORY.get(stage, [])])
    validate_config(cfg)
    assert cfg.run == "coco_wsol" and cfg.paths.run_dir == "/O/coco_wsol"
    assert (cfg.dataset.name, cfg.dataset.num_classes, cfg.model.name) == ("coco", 80, "resnet50")
    assert cfg.model.pretrained is True and cfg.model.build.pretrained is True
    expected = {
        "train": {"input_size": 224},
        "cams": {"scales": [1.0], "flip": False},
        "eval": {"task": "localization", "box_acc_step": 0.01, "iou_threshold": 0.5},
    }.get(stage, {})
    assert {k: OmegaConf.to_container(cfg.stage, resolve=True)[k] for k in expected} == expected


def test_experiment_keeps_command_line_overrides_and_other_stages_untouched():
    cfg = compose(["+experiment=voc_sec", "stage=seeds", "stage.background=irn", "model=resnet50"])
    assert cfg.stage.background == "irn" and cfg.model.name == "resnet50" and cfg.model.pretrained is True
    plain = compose(["stage=seeds"])
    assert plain.stage.background == "threshold" and plain.run == "toy-small_cnn"


def test_experiment_settings_are_checked_by_the_schemas():
    with pytest.raises(ConfigCompositionException):
        compose(["+experiment=voc_sec", "stage=seeds", "stage.background=nope"])
