"""stage=cams with a list of target layers, a target and a gradient budget, from the configuration."""

from __future__ import annotations

import numpy as np
import torch

from wsl import io
from wsl.cam import CAMExtractor
from wsl.data.transforms import to_tensor
from wsl.layout import RunLayout
from wsl.stages import cams, common


def test_cams_stage_with_layers_target_and_budget(trained, compose_at):
    layers = "[features.9,features]"
    cfg = compose_at(
        ["stage=cams", "num_workers=0", "stage.limit=2", "stage.all_classes=true", "stage.flip=false",
         f"model.target_layer={layers}", "cam.target=sigmoid", "stage.max_grad_mb=8"],
        trained,
    )  # fmt: skip
    settings = common.cam_settings(cfg)
    assert settings.target_layer == ("features.9", "features") and settings.target == "sigmoid"
    assert settings.max_grad_mb == 8 and settings.options["score"] == "logit_softmax"
    metrics = cams.run(cfg)
    assert metrics["images"] == 2
    folder = RunLayout(trained / "toy-small_cnn").cams("gradcam", "val")
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 2
    # the stored maps are the extractor's combined maps, each divided by its maximum
    ds = common.build_dataset(cfg, "val")
    model = common.load_classifier(cfg, torch.device("cpu"))

    for i in range(2):
        rec = io.load_cams(folder / f"{ds.ids[i]}.npz")
        assert rec["maps"].shape[0] == 6  # every class
        x = to_tensor(ds.load_image(i), cfg.dataset.mean, cfg.dataset.std)[None]
        ext = CAMExtractor(model, "gradcam", ["features.9", "features"], target="sigmoid", max_grad_mb=1e6)
        maps = ext(x)[0]
        maps = maps / maps.amax((-2, -1), keepdim=True).clamp(min=1e-12)
        got = torch.from_numpy(rec["maps"].astype(np.float32))
        small = torch.nn.functional.interpolate(maps[None], got.shape[-2:], mode="bilinear")[0]
        small = small / small.amax((-2, -1), keepdim=True).clamp(min=1e-12)
        assert float((got - small).abs().max()) < 2e-3  # float16 storage
