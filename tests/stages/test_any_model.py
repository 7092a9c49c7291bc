"""model=timm / model=torchvision through the pipeline on the toy data, with no user code: the real CLI
trains and makes CAMs (ConvNeXt, ViT, a torchvision MobileNet), and the benchmark / visualize / explain
stages run on such a model; the README's benchmark command for a folder of one's own images composes."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from distributed import wsl
from hydra import compose, initialize_config_dir

from wsl import io
from wsl.config_schema import validate_config
from wsl.layout import RunLayout
from wsl.run import CONF_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
# the session's small toy dataset (tests/conftest.py: SMALL_TOY), so that the CLI does not regenerate it
TOY = ["++dataset.prepare.n_train=48", "++dataset.prepare.n_val=24"]
FAST_TRAIN = ["stage.epochs=1", "stage.batch_size=16", "stage.input_size=96", "num_workers=0"]

# the command of the README notes (readme_models.md): benchmark a timm model on a folder of one's own images
FOLDER_BENCHMARK = (
    "python -m wsl.run stage=benchmark dataset=folder dataset.num_classes=2 'dataset.class_names=[cat,dog]' "
    "model=timm model.arch=convnext_atto model.weights=convnext_atto.pth "
    "'stage.methods=[gradcam,layercam,scorecam]'"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,run,cam",
    [
        (["model=timm", "model.arch=convnext_atto"], "toy-timm-convnext_atto", "gradcam"),
        (["model=timm", "model.arch=vit_tiny_patch16_224"], "toy-timm-vit_tiny_patch16_224", "gradcam"),
        # after 3 training steps this network's Grad-CAM is negative everywhere (all maps 0 after the ReLU,
        # also when conv5 is hooked directly): LayerCAM's positive-gradient weights make a map to check
        (["model=torchvision", "model.arch=shufflenet_v2_x0_5"], "toy-tv-shufflenet_v2_x0_5", "layercam"),
    ],
    ids=["convnext_atto", "vit_tiny", "tv_shufflenet_v2_x0_5"],
)
def test_cli_trains_and_makes_cams_with_any_model(model, run, cam, data_root, tmp_path):
    common = [f"paths.data_root={data_root}", f"paths.output_root={tmp_path}", *TOY, *model]
    for stage in (
        ["stage=train", *FAST_TRAIN],
        ["stage=cams", f"cam={cam}", "stage.limit=3", "num_workers=0"],
    ):
        done = wsl([*stage, *common], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    lay = RunLayout(tmp_path / run)
    assert lay.classifier().is_file()
    files = sorted(lay.cams(cam, "val").glob("*.npz"))
    assert len(files) == 3
    peaks = []
    for f in files:
        rec = io.load_cams(f)
        maps = np.asarray(rec["maps"])
        h, w = (int(v) for v in rec["image_size"])
        assert maps.shape[1:] == (-(-h // 4), -(-w // 4))  # stored at stride 4 of the image, whatever the net
        assert np.isfinite(maps).all()
        peaks += maps.reshape(len(maps), -1).max(1).tolist()
    # every non-zero map peaks at exactly 1 (a class whose Grad-CAM is negative everywhere is all zero)
    assert all(p == 0 or p == pytest.approx(1.0) for p in peaks) and max(peaks) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory, compose_at):
    """A 1-epoch ViT classifier on the toy data (trained once for this module)."""
    from wsl.stages import train

    out = tmp_path_factory.mktemp("vit")
    train.run(compose_at(["stage=train", "model=timm", "model.arch=vit_tiny_patch16_224", *FAST_TRAIN], out))
    return out


@pytest.mark.slow
def test_benchmark_visualize_explain_on_a_vit(vit_run, compose_at, data_root):
    from wsl.stages import benchmark, explain, visualize

    vit = ["model=timm", "model.arch=vit_tiny_patch16_224", "num_workers=0"]
    cfg = compose_at(
        [
            "stage=benchmark",
            *vit,
            "stage.methods=[gradcam,guided_backprop]",
            "stage.limit=2",
            "stage.faithfulness.images=1",
            "stage.faithfulness.steps=2",
            "stage.sanity.images=1",
            "stage.cost_images=1",
            "stage.gallery.images=1",
        ],  # fmt: skip
        vit_run,
    )
    benchmark.run(cfg)
    lay = RunLayout(cfg.paths.run_dir)
    table = (lay.benchmark() / "benchmark.csv").read_text()
    assert "gradcam" in table and "guided_backprop" in table
    visual = ["stage=visualize", *vit, "stage.methods=[gradcam]", "stage.limit=1", "stage.failures=0"]
    cfg = compose_at(visual, vit_run)
    visualize.run(cfg)
    assert list(lay.visualize("val").rglob("*.png"))
    image = next((data_root / "toy" / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    cfg = compose_at(["stage=explain", *vit, f"stage.image={image}"], vit_run)
    explain.run(cfg)
    assert list(lay.explain().rglob("*.png"))


def test_readme_folder_benchmark_command_composes():
    args = shlex.split(FOLDER_BENCHMARK)[3:]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=args)
    validate_config(cfg)
    assert cfg.model.build._target_ == "wsl.models.zoo.build_timm" and cfg.model.target_layer == "cam_layer"
    assert cfg.run == "folder-timm-convnext_atto"
