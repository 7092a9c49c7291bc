"""wsl.benchmark's make-style steps, method and image selection, and probes on hand-made inputs."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from wsl import io
from wsl.benchmark import (
    Item,
    PeakMemory,
    Probes,
    Step,
    default_blocks,
    faithfulness,
    fresh,
    pick_images,
    resolve_methods,
    run_steps,
    sanity,
)
from wsl.errors import UserError


def test_run_steps_reuses_fails_and_skips():
    calls = []

    def boom():
        raise ValueError("bad map")

    def unreadable():
        raise OSError("truncated")

    status, values = run_steps(
        [
            Step("cams", lambda: calls.append("cams") or 1, reuse=True, load=lambda: 7),
            Step("boxes", boom, needs=("cams",)),
            Step("eval/localization", lambda: 3, needs=("cams", "boxes")),
            Step(
                "eval/segmentation",
                lambda: calls.append("seg") or 4,
                reuse=True,
                load=unreadable,
                needs=("cams",),
            ),  # fmt: skip
            Step("other", lambda: (_ for _ in ()).throw(UserError("fix me"))),
        ],
        "gradcam",
    )
    assert status == {
        "cams": "reused",
        "boxes": "failed: ValueError: bad map",
        "eval/localization": "skipped: boxes did not run",
        "eval/segmentation": "ran",  # its output on disk could not be read back: made again
        "other": "failed: fix me",
    }
    assert values == {"cams": 7, "eval/segmentation": 4} and calls == ["seg"]


def test_fresh_compares_modification_times(tmp_path):
    a, b = tmp_path / "in.json", tmp_path / "out.json"
    assert not fresh(b, a)
    b.write_text("{}")
    assert fresh(b, a)  # a missing input does not make an output stale
    a.write_text("{}")
    os.utime(b, (time.time() - 10, time.time() - 10))
    assert not fresh(b, a)


def test_methods_and_images_are_checked():
    with pytest.raises(UserError, match="stage.methods.*gradcom"):
        resolve_methods(["gradcam", "gradcom"])
    with pytest.raises(UserError, match="empty list"):
        resolve_methods([])
    assert resolve_methods(None)[:2] == ["cam", "gradcam"] and resolve_methods(("eigencam",)) == ["eigencam"]

    class DS:
        ids, split = ["a", "b", "c"], "val"

        def __len__(self):
            return 3

    assert pick_images(DS(), None, 2) == [0, 1] and pick_images(DS(), [], 9) == [0, 1, 2]
    assert pick_images(DS(), ["c", "a"], 1) == [2, 0]
    with pytest.raises(UserError, match=r"stage.gallery.ids: \['z'\] are not images of split 'val'"):
        pick_images(DS(), ["a", "z"], 1, "stage.gallery.ids")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )


def _pooled_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 3),
    ).eval()  # fmt: skip


def test_default_blocks_and_peak_memory():
    assert default_blocks(_net(), 2) == ["4", "2"]
    if PeakMemory.rss() is None:
        pytest.skip("no /proc/self/statm: the resident set size cannot be sampled on this platform")
    with PeakMemory(torch.device("cpu")) as mem:
        big = torch.ones(64, 2**20)  # 256 MB
        time.sleep(0.05)  # a few samples while it is held
        del big
    assert mem.peak_mb is not None and mem.peak_mb > 100


def test_faithfulness_gives_fractions(tmp_path):
    net = _pooled_net()
    items = [Item(f"im{k}", torch.randn(1, 3, 16, 16), [0, 2]) for k in range(2)]
    rng = np.random.default_rng(0)
    for it in items:
        io.save_cams(
            tmp_path / f"{it.id}.npz", np.array([0, 1, 2]), rng.random((3, 4, 4)), np.zeros(3), (16, 16)
        )
    out = faithfulness(net, items, tmp_path, steps=4)
    assert out["faithfulness_pairs"] == 4
    assert 0.0 <= out["average_drop"] <= 1.0 and 0.0 <= out["increase_in_confidence"] <= 1.0
    assert 0.0 <= out["deletion_auc"] <= 1.0 and len(out["insertion_curve"][1]) == 5
    assert faithfulness(net, [Item("absent", items[0].x, [0])], tmp_path, steps=4) == {}


def test_probes_skip_empty_subsets_and_record_failures():
    x = torch.randn(1, 3, 8, 8)
    probes = Probes(
        _pooled_net(), torch.device("cpu"), "0", ["4"], costly=[Item("a", x, [0]), Item("b", x, [1])]
    )
    status: dict[str, str] = {}
    out = probes.measure("gradcam", None, status)
    assert set(out) == {"images_per_s", "ms_per_map", "peak_mb"} and status == {}
    assert probes.measure("no-such-method", None, status) == {} and status["cost"].startswith("failed: ")
    assert "cost on 1 images" in probes.notes()


def test_probes_give_intervals_and_find_identical_maps(tmp_path):
    net = _pooled_net()
    items = [Item(f"im{k}", torch.randn(1, 3, 16, 16), [0, 2]) for k in range(4)]
    rng = np.random.default_rng(0)
    maps = {it.id: rng.random((3, 4, 4)) for it in items}
    for folder, change in (("a", 0.0), ("b", 1e-4), ("c", 0.3)):  # b: a up to float16 rounding
        for it in items:
            stored = maps[it.id] + change * rng.random((3, 4, 4))
            io.save_cams(
                tmp_path / folder / f"{it.id}.npz", np.array([0, 1, 2]), stored, np.zeros(3), (16, 16)
            )
    out = faithfulness(net, items, tmp_path / "a", steps=4)
    for key in ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"):
        assert out[f"{key}_low"] <= out[key] <= out[f"{key}_high"], key
    sane = sanity(net, "gradcam", "0", items[:3], ["4"], 0.5, seed=0)
    assert sane["sanity_spearman_low"] <= sane["sanity_spearman"] <= sane["sanity_spearman_high"]
    probes = Probes(net, torch.device("cpu"), "0", ["4"], faith=items, steps=4)
    for m in ("a", "b", "c"):
        status: dict[str, str] = {}
        assert "deletion_auc_low" in probes.measure(m, tmp_path / m, status) and status == {}
    assert probes.identical_maps() == {"groups": [["a", "b"]], "maps": 8, "tolerance": 2e-3}
