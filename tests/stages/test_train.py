"""stage=train: checkpoints, resume after interruption, metrics, and the toy target (slow)."""

from __future__ import annotations

import json

import pytest

from wsl import io
from wsl.stages import train


def test_resume_continues_from_last_checkpoint(compose_at, tmp_path):
    cfg1 = compose_at(["stage=train", "stage.epochs=1", "num_workers=0", "stage.batch_size=16"], tmp_path)
    train.run(cfg1)
    folder = tmp_path / "toy-small_cnn" / "train"
    first = io.load_checkpoint(folder / "last.pt")
    assert first["epoch"] == 1 and len(first["history"]) == 1
    # the same run asked for 2 epochs: it resumes at epoch 2 instead of starting again
    cfg2 = compose_at(["stage=train", "stage.epochs=2", "num_workers=0", "stage.batch_size=16"], tmp_path)
    metrics = train.run(cfg2)
    second = io.load_checkpoint(folder / "last.pt")
    assert second["epoch"] == 2 and [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]
    assert metrics["epochs"] == 2 and 0 <= metrics["best_val_map"] <= 1
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["best_val_map"] == pytest.approx(max(h["map"] for h in second["history"]))
    # finished: a re-run does nothing
    assert train.run(cfg2) == saved


def test_other_model_in_last_checkpoint_is_a_clear_error(compose_at, tmp_path):
    from wsl.errors import UserError

    train.run(compose_at(["stage=train", "stage.epochs=1", "num_workers=0", "stage.batch_size=16"], tmp_path))
    cfg = compose_at(
        ["stage=train", "stage.epochs=2", "num_workers=0", "model=resnet18", "run=toy-small_cnn"], tmp_path
    )
    with pytest.raises(UserError, match="another model"):
        train.run(cfg)


@pytest.mark.parametrize("form", ["plain", "wrapped", "ddp"])
def test_model_checkpoint_in_every_form_initialises_training(trained_root, compose_at, tmp_path, form):
    """model.checkpoint may be a plain state dict (what conf/model documents), {"model": ...} or DDP's
    ``module.``-prefixed keys: stage=train starts from those weights in every case."""
    import torch

    from wsl.layout import RunLayout

    state = io.load_checkpoint(RunLayout(trained_root / "toy-small_cnn").classifier())["model"]
    saved = {"plain": state, "wrapped": {"model": state}, "ddp": {f"module.{k}": v for k, v in state.items()}}
    ckpt = tmp_path / "init.pt"
    torch.save(saved[form], ckpt)
    cfg = compose_at(
        [
            "stage=train",
            "stage.epochs=1",
            "num_workers=0",
            "stage.lr=0.0",
            "stage.warmup_steps=1",
            f"model.checkpoint={ckpt}",
        ],
        tmp_path / "out",
    )
    train.run(cfg)
    after = io.load_checkpoint(RunLayout(tmp_path / "out" / "toy-small_cnn").classifier())["model"]
    assert all(
        torch.equal(after[k], v) for k, v in state.items() if "running" not in k and v.is_floating_point()
    )


def test_checkpoint_of_another_shape_names_the_keys(compose_at, tmp_path):
    import torch

    from wsl.errors import UserError

    ckpt = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(1000, 3)}, ckpt)
    cfg = compose_at(["stage=train", "stage.epochs=1", "num_workers=0", f"model.checkpoint={ckpt}"], tmp_path)
    with pytest.raises(
        UserError,
        match=r"missing keys features.0.weight.*shape mismatch .*fc.weight \(1000, 3\) vs \(6, 96\)",
    ):
        train.run(cfg)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    cfg = compose_at(["stage=train", "num_workers=0", f"model.checkpoint={tmp_path / 'text.pt'}"], tmp_path)
    with pytest.raises(UserError, match="text.pt is not a checkpoint"):
        train.run(cfg)


@pytest.mark.slow
def test_default_training_reaches_the_toy_target(tmp_path):
    """The README's claim: default settings on the full toy data reach val mAP >= 0.9 (time not checked)."""
    from hydra import compose, initialize_config_dir

    from wsl.run import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "stage=train",
                f"paths.data_root={tmp_path / 'data'}",
                f"paths.output_root={tmp_path / 'out'}",
            ],
        )
    metrics = train.run(cfg)
    assert metrics["best_val_map"] >= 0.9
