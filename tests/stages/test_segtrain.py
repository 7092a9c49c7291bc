"""stage=segtrain (the final network of the WSSS loop) and its scoring by stage=eval on val.

Fast: the poly schedule, the augmentation, the micro-batch schedule, the loss normalisation of a step.
Slow: a tiny end-to-end run, eval on val with the loop summary,
an interrupted CLI run (WSL_KILL_AFTER) and 2 torchrun processes against 1.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from wsl import REPO_ROOT, io
from wsl.errors import UserError
from wsl.evaluation.loop import loop_markdown
from wsl.segmentation.segtrain import (
    IGNORE,
    augment,
    part_schedule,
    pixel_ce_sum,
    poly_lr,
    set_poly_lr,
    split_parts,
    train_step,
)
from wsl.stages import cams as cams_stage
from wsl.stages import eval as eval_stage
from wsl.stages import segtrain as segtrain_stage
from wsl.stages.common import build_dataset, layout

FAST = ["segmodel.build.width=8", "stage.crop_size=64", "stage.batch_size=4", "num_workers=0",
        "stage.log_every=1"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ fast


def test_poly_schedule_values():
    # DeepLab's poly policy, by hand: 0.01 * (1 - 50/100)^0.9 = 0.01 * 0.5358867...
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.005358867312681466, rel=1e-12)
    assert poly_lr(0.01, 75, 100, power=1.0) == pytest.approx(0.0025)
    assert poly_lr(0.01, 100, 100) == 0.0
    with pytest.raises(ValueError):
        poly_lr(0.01, 101, 100)
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD(
        [{"params": [w], "lr_mult": 10.0}, {"params": [nn.Parameter(torch.zeros(1))]}], lr=1
    )
    assert set_poly_lr(opt, 0.01, 50, 100, 0.9) == pytest.approx(0.005358867312681466)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05358867312681466, 0.005358867312681466])


def test_augment_crops_pads_flips_and_never_blends_labels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    label = rng.integers(0, 4, (20, 30)).astype(np.uint8)
    im, lab, inside = augment(image, label, np.random.default_rng(1), 20, (1.0, 1.0), False)
    x0 = [x for x in range(11) if (im == image[:, x : x + 20]).all()]  # a window of the image itself
    assert len(x0) == 1 and (lab == label[:, x0[0] : x0[0] + 20]).all() and inside.all()
    big_im, big_lab, big_in = augment(image, label, np.random.default_rng(1), 40, (1.0, 1.0), False)
    assert big_im.shape == (40, 40, 3) and big_in.sum() == 600  # the whole image, padded
    assert (big_lab[~big_in] == IGNORE).all() and (big_im[~big_in] == 0).all()
    np.testing.assert_array_equal(big_lab[big_in].reshape(20, 30), label)
    for seed in range(5):  # random scales: nearest-neighbour labels, same draw for the same seed
        a = augment(image, label, np.random.default_rng(seed), 16, (0.5, 1.5), True)
        b = augment(image, label, np.random.default_rng(seed), 16, (0.5, 1.5), True)
        assert all((x == y).all() for x, y in zip(a, b))
        assert set(np.unique(a[1])) <= {0, 1, 2, 3, IGNORE}
    flips = {bool((augment(image, label, np.random.default_rng(s), 20, (1, 1), True)[1][:, ::-1] ==
                   augment(image, label, np.random.default_rng(s), 20, (1, 1), False)[1]).all())
             for s in range(8)}  # fmt: skip
    assert flips == {True, False}  # both outcomes of the flip coin occur (and the flip is exact)


def test_micro_batches_are_shared_between_processes_and_resumable():
    one = part_schedule(10, 4, 2, 0, 5, seed=0, rank=0, world=1)
    assert len(one) == 10 and all(len(p) == 2 for p in one)
    two = [part_schedule(10, 4, 2, 0, 5, seed=0, rank=r, world=2) for r in (0, 1)]
    assert two[0] == one[0::2] and two[1] == one[1::2]  # rank r: parts r, r + 2, ... of the same batches
    assert part_schedule(10, 4, 2, 3, 5, seed=0, rank=0, world=1) == one[6:]  # resumed at iteration 3
    assert {it for part in one for it, _ in part} == set(range(5))
    assert split_parts([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    with pytest.raises(ValueError):
        part_schedule(10, 4, 3, 0, 5, seed=0, rank=0, world=2)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Conv2d(3, 3, 3, padding=1, stride=2)

    def forward(self, x):
        return self.classifier(x)


def test_a_step_in_parts_equals_the_step_on_the_whole_batch():
    """The loss is normalised by the valid pixels of the WHOLE batch, whatever the cut into parts."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (5, 8, 8), generator=g)
    y[0, :, :5] = y[3, 2:] = IGNORE  # parts with different numbers of valid pixels

    def step(cuts):
        torch.manual_seed(0)
        net = _Tiny()
        opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        parts = [(p, {"x": x[idx], "y": y[idx]}) for p, idx in enumerate(cuts)]
        loss, valid = train_step(net, opt, parts, 0, 0, 1, lambda v: list(v), torch.device("cpu"))
        return net, loss, valid

    whole, loss, valid = step([list(range(5))])
    cut, loss2, valid2 = step([[0, 1], [2, 3, 4]])
    assert valid == valid2 == int((y != IGNORE).sum()) and loss == pytest.approx(loss2, rel=1e-6)
    torch.manual_seed(0)
    ref = _Tiny()
    (pixel_ce_sum(ref(x), y) / valid).backward()  # the plain mean over valid pixels, by autograd
    for a, b, r in zip(whole.parameters(), cut.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(a, r.detach() - 0.5 * r.grad, atol=1e-6, rtol=1e-5)


def test_unusable_samples_are_dropped(compose, tmp_path):
    from wsl.segmentation.segtrain import SegTrainSet, collate_parts

    cfg = compose(["stage=segtrain"])
    ds = build_dataset(cfg, "train")
    io.write_label_png(tmp_path / f"{ds.ids[0]}.png", np.zeros(ds.image_size(0), np.uint8))
    io.write_label_png(tmp_path / f"{ds.ids[1]}.png", np.zeros((5, 5), np.uint8))  # wrong size
    (tmp_path / f"{ds.ids[2]}.png").write_bytes(b"not a png")
    data = SegTrainSet(ds, [0, 1, 2, 3], tmp_path, 32, (1.0, 1.0), True, [0.5] * 3, [0.2] * 3, seed=0)
    items = [data[(7, j)] for j in range(4)]  # 3: no file at all
    assert items[0]["x"].shape == (3, 32, 32) and items[0]["y"].shape == (32, 32) and items[1:] == [None] * 3
    assert collate_parts(items)["x"].shape == (1, 3, 32, 32) and collate_parts(items[1:]) is None
    assert torch.equal(data[(7, 0)]["x"], items[0]["x"])  # the same key, the same sample


# ------------------------------------------------------------------------------------------------ slow


def write_labels(cfg, refiner: str = "sec", noise: float = 0.2) -> None:
    """Pseudo-labels from the train masks, ``noise`` of the pixels 255 (a stand-in for stage=labels)."""
    ds = build_dataset(cfg, "train", with_masks=True)
    folder = layout(cfg).pseudo_labels(refiner, cfg.cam.name, "train")
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        lab = ds.load_mask(i).copy()
        lab[rng.random(lab.shape) < noise] = IGNORE
        io.write_label_png(folder / f"{ds.ids[i]}.png", lab)
    io.write_json(folder / "manifest.json", {})


@pytest.mark.slow
def test_segtrain_then_eval_scores_it_on_val(trained, compose_at, caplog):
    def cfg(*more):
        return compose_at(["stage=segtrain", *FAST, *more], trained)

    with pytest.raises(UserError, match="stage=labels"):
        segtrain_stage.run(cfg())
    with pytest.raises(UserError, match="stage=randomwalk"):
        segtrain_stage.run(cfg("stage.labels=randomwalk"))
    write_labels(cfg())
    full = segtrain_stage.run(cfg("stage.iterations=6", "stage.checkpoint_every=3"))
    assert full["iterations"] == 6 and full["images"] == 48 and full["processes"] == 1
    out = layout(cfg()).segtrain("sec", "gradcam")
    history = io.read_json(out / "history.json")
    assert [h["iteration"] for h in history] == list(range(1, 7))
    assert [h["lr"] for h in history] == pytest.approx([poly_lr(0.02, t, 6) for t in range(6)])
    assert all(np.isfinite(h["loss"]) for h in history)
    for name in segtrain_stage.OUTPUTS:
        assert (out / name).is_file(), name
    assert io.load_checkpoint(out / "final.pt")["labels"] == "sec"
    assert segtrain_stage.run(cfg("stage.iterations=6"))["iterations"] == 6  # finished: left alone

    # stage=eval on val: CAM masks as before, plus the network (with and without the CRF) and the loop
    cams_stage.run(compose_at(["stage=cams", "stage.split=val", "num_workers=0"], trained))
    ev = compose_at(["stage=eval", "stage.split=val", "stage.task=segmentation", "stage.crf_processes=0",
                     "segmodel.build.width=8", "stage.net_scales=[1.0,0.75]"], trained)  # fmt: skip
    res = eval_stage.run(ev)
    net = res["segtrain-sec"]
    assert net["plain"]["images"] == 24 and 0 <= net["miou"] <= 1 and 0 <= net["miou_crf"] <= 1
    assert net["scales"] == [1.0, 0.75] and net["flip"] is True and net["input_size"] is None
    lay = layout(ev)
    assert io.read_json(lay.eval_network("gradcam", "val", "segtrain-sec") / "metrics.json") == net
    loop = io.read_json(lay.loop("gradcam") / "loop.json")["figures"]
    assert loop["net_segtrain_sec"] == net["miou"] and loop["net_segtrain_sec_crf"] == net["miou_crf"]
    assert loop["labels_randomwalk"] is None and "net_sec" in loop  # steps this run has not made: n/a
    md = (lay.loop("gradcam") / "loop.md").read_text()
    assert f"{100 * net['miou']:.1f}" in md and "63.5" in md and "+experiment=voc_sec" in md
    # stage.networks=[] : the evaluation of before (no network folder written)
    quiet = eval_stage.run(compose_at(["stage=eval", "stage.split=val", "stage.task=segmentation",
                                       "stage.networks=[]"], trained))  # fmt: skip
    assert set(quiet) == {"segmentation"}
    # a network trained as another segmodel is left out with one warning, not loaded into the wrong one
    other = compose_at(["stage=eval", "stage.split=val", "stage.task=segmentation", "segmodel=largefov"],
                       trained)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="wsl"):
        assert set(eval_stage.run(other)) == {"segmentation"}
    assert "holds another network than segmodel=largefov" in caplog.text


def test_loop_markdown_spread():
    runs = [{"cams": 0.4, "net_segtrain_randomwalk": 0.6}, {"cams": 0.5, "net_segtrain_randomwalk": None}]
    md = loop_markdown(runs)
    assert "| CAM masks (bg 0.15) | train | 45.0 ± 7.1 (n=2) | - | 48.0 | 48.3 |" in md
    assert "| final network on random-walk labels | val | 60.0 | - | 61.7 | 63.5 |" in md
    assert "| seeds (labelled pixels) | train | n/a |" in md


def _cli(root, data_root, *args, kill_after=None, torchrun=False):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WSL_KILL_AFTER", None)
    if kill_after:
        env["WSL_KILL_AFTER"] = kill_after
    head = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
        if torchrun
        else [sys.executable]
    )
    paths = [f"paths.data_root={data_root}", f"paths.output_root={root}"]
    toy = ["++dataset.prepare.n_train=48", "++dataset.prepare.n_val=24"]
    cmd = [*head, "-m", "wsl.run", "stage=segtrain", *FAST, *paths, *toy, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_interrupted_segtrain_resumes_to_the_same_weights(compose_at, data_root, tmp_path):
    runs = {}
    for name in ("killed", "straight"):
        root = tmp_path / name
        write_labels(compose_at(["stage=segtrain"], root))
        runs[name] = root
    args = ["stage.iterations=6", "stage.checkpoint_every=2"]
    r = _cli(runs["killed"], data_root, *args, kill_after="last.pt:2")  # killed right after iteration 4
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    out = layout(compose_at(["stage=segtrain"], runs["killed"])).segtrain("sec", "gradcam")
    assert io.load_checkpoint(out / "last.pt")["iteration"] == 4 and not (out / "final.pt").exists()
    for name, root in runs.items():
        r = _cli(root, data_root, *args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert ("resuming segtrain" in r.stdout + r.stderr) == (name == "killed")
    ref = layout(compose_at(["stage=segtrain"], runs["straight"])).segtrain("sec", "gradcam")
    a, b = io.load_state_dict(ref / "final.pt"), io.load_state_dict(out / "final.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert io.read_json(out / "history.json") == io.read_json(ref / "history.json")


@pytest.mark.slow
def test_two_torchrun_processes_match_one_with_two_micro_batches(compose_at, data_root, tmp_path):
    """Same global batches, one micro-batch per process vs two accumulated in one process: the parameters
    agree to float rounding (1e-5; the gradients are summed in another order). Batch-norm running
    statistics are rank 0's under DDP (broadcast from it), so only parameters are compared."""
    roots = {n: tmp_path / n for n in ("one", "two")}
    for root in roots.values():
        write_labels(compose_at(["stage=segtrain"], root))
    args = ["stage.iterations=4", "num_workers=0"]
    one = _cli(roots["one"], data_root, *args, "stage.micro_batches=2")
    assert one.returncode == 0, one.stderr[-3000:]
    two = _cli(roots["two"], data_root, *args, torchrun=True)
    assert two.returncode == 0, two.stderr[-3000:]
    folders = {
        n: layout(compose_at(["stage=segtrain"], r)).segtrain("sec", "gradcam") for n, r in roots.items()
    }
    assert io.read_json(folders["two"] / "metrics.json")["processes"] == 2
    torch.manual_seed(0)
    names = {
        n
        for n, _ in segtrain_stage.common.build_segmodel(
            compose_at(["stage=segtrain", *FAST], tmp_path)
        ).named_parameters()
    }
    a, b = (io.load_state_dict(f / "final.pt") for f in folders.values())
    for k in names:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    la, lb = (io.read_json(f / "history.json") for f in folders.values())
    assert [h["loss"] for h in la] == pytest.approx([h["loss"] for h in lb], rel=1e-5)
