"""stage=visualize: the default layers, and the pictures it writes for a method list and a layer list."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl import io
from wsl.benchmark import auto_layers
from wsl.layout import RunLayout
from wsl.models.classifier import build_classifier
from wsl.stages import visualize


def test_auto_layers_small_cnn_and_resnet():
    x = torch.zeros(1, 3, 64, 64)
    assert auto_layers(build_classifier("small_cnn", 6).eval(), "features", x) == [
        "features.2",
        "features.9",
        "features",
    ]
    resnet = build_classifier("resnet18", 6).eval()
    assert auto_layers(resnet, "layer4", x) == ["layer1", "layer2", "layer3", "layer4"]
    assert auto_layers(resnet, "layer3", x, most=2) == ["layer2", "layer3"]


@pytest.mark.slow
def test_visualize_methods_layers_and_failures(trained, compose_at):
    def compose(overrides):
        return compose_at(overrides, trained)

    overrides = ["num_workers=0"]
    cfg = compose(
        [
            *overrides,
            "stage=visualize",
            "stage.methods=[cam,gradcam]",
            "stage.layers=[features.9,features]",
            "stage.limit=2",
            "stage.failures=2",
        ]
    )
    result = visualize.run(cfg)
    out = RunLayout(cfg.paths.run_dir).visualize("val")
    manifest = io.read_json(out / "manifest.json")
    assert manifest["layers"] == ["features.9", "features"] and manifest["methods"] == ["cam", "gradcam"]
    for image_id in manifest["images"]:
        methods = io.read_image(out / "methods" / f"{image_id}.png")
        layers = io.read_image(out / "layers" / f"{image_id}.png")
        assert methods.shape[1] > 3 * 140 and layers.shape[1] > 3 * 140  # image + two panels per row
        assert methods.std() > 10
    assert len(manifest["failures"]) == result["failures"] <= 2
    assert sorted(p.stem for p in (out / "failures").glob("*.png")) == sorted(manifest["failures"])
    assert result["pictures"] == 2 * len(manifest["images"]) + result["failures"]
    # explicit ids, the run's cam group for the layer pictures
    cfg = compose(
        [
            *overrides,
            "stage=visualize",
            "stage.methods=[eigencam]",
            f"stage.ids=[{manifest['images'][1]}]",
            "stage.failures=0",
            "cam=layercam",
        ]
    )
    again = visualize.run(cfg)
    assert (
        again["images"] == 1
        and again["failures"] == 0
        and again["layers"] == ["features.2", "features.9", "features"]
    )
    assert np.asarray(io.read_image(out / "layers" / f"{manifest['images'][1]}.png")).shape[1] > 4 * 140
