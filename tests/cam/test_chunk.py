"""Classes in chunks under a memory budget: the same maps, never more gradient memory than the budget."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torchvision

import wsl.cam.extractor as extractor_module
from wsl.cam import CAMExtractor, memory

MANY = 40  # classes of the test network


@pytest.fixture(scope="module")
def wide():
    """A ResNet-18 with 40 classes (random weights)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None, num_classes=MANY).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "method", ["gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "guided_gradcam"]
)
def test_chunked_maps_equal_unchunked(wide, x, method):
    whole = CAMExtractor(wide, method, "layer4", max_grad_mb=1e6)
    expected = whole(x)
    assert whole.last_chunk == MANY
    # one class per chunk (over the budget: warned), a few classes per chunk
    for mb in (1e-3, 0.3) if method != "guided_gradcam" else (0.3,):
        ext = CAMExtractor(wide, method, "layer4", max_grad_mb=mb)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = ext(x)
        assert any("one class at a time" in str(w.message) for w in caught) == (mb == 1e-3)
        assert 1 <= ext.last_chunk < MANY
        assert got.shape == expected.shape == (2, MANY, *expected.shape[2:])
        assert float((got - expected).abs().max()) <= 1e-6 * max(1.0, float(expected.abs().max()))


def test_chunked_multilayer_and_ragged_equal_unchunked(wide, x):
    layers = ["layer3", "layer4"]
    classes = [list(range(0, MANY, 2)), list(range(7))]
    expected = CAMExtractor(wide, "gradcam", layers, max_grad_mb=1e6)(x, classes)
    ext = CAMExtractor(wide, "gradcam", layers, max_grad_mb=1.0)
    got = ext(x, classes)
    assert 1 < ext.last_chunk < MANY // 2
    for g, e in zip(got, expected):
        assert g.shape == e.shape and float((g - e).abs().max()) <= 1e-6


def test_gradients_held_never_exceed_the_budget(wide, x, monkeypatch):
    """Every batched gradient call returns at most the budget's worth of gradients."""
    held = []
    real = extractor_module.batched_grads

    def recording(scores, inputs, columns, **kw):
        grads = real(scores, inputs, columns, **kw)
        held.append((len(columns), sum(g.numel() * g.element_size() for g in grads)))
        return grads

    monkeypatch.setattr(extractor_module, "batched_grads", recording)
    budget_mb = 0.2
    ext = CAMExtractor(wide, "gradcam", "layer4", max_grad_mb=budget_mb)
    ext(x)
    per_class = 2 * 512 * 2 * 2 * 4  # a (2, 512, 2, 2) float32 gradient of layer4 per class
    assert len(held) > 1 and sum(n for n, _ in held) == MANY
    assert all(b == n * per_class for n, b in held)
    assert max(b for _, b in held) <= budget_mb * 2**20
    # and the budget is used: the chunks are as large as the estimate allows, not one class each
    assert max(n for n, _ in held) == ext.last_chunk > 1


def test_budget_from_free_memory(monkeypatch):
    cpu = torch.device("cpu")
    assert memory.free_memory(cpu) > 0
    monkeypatch.setattr(memory, "free_memory", lambda device: 400 << 20)
    assert memory.grad_budget(None, cpu) == 100 << 20
    assert memory.grad_budget(3, cpu) == 3 << 20
    with pytest.raises(ValueError, match="max_grad_mb"):
        memory.grad_budget(0, cpu)
    assert memory.chunk_size(100, 30, 1000) == 3
    assert memory.chunk_size(100, 300, 1000) == 1
    assert memory.chunk_size(10**9, 1, 7) == 7
    assert memory.chunks(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]
    with pytest.raises(ValueError, match="max_grad_mb"):
        CAMExtractor(torch.nn.Conv2d(3, 3, 1), "gradcam", "", max_grad_mb=-1)


PEAK = textwrap.dedent(
    """
    import sys, torch, torchvision
    from wsl.cam import CAMExtractor

    def hwm():  # this process's peak resident memory (MiB); ru_maxrss would carry the parent's over exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    x = torch.randn(2, 3, 224, 224)
    CAMExtractor(model, "gradcam", "layer4")(x, torch.zeros(2, 1, dtype=torch.long))  # one class: baseline
    base = hwm()
    budget = None if sys.argv[1] == "none" else float(sys.argv[1])
    maps = CAMExtractor(model, "gradcam", "layer4", max_grad_mb=budget)(x)
    assert maps.shape == (2, 1000, 7, 7)
    print(hwm() - base)
    """
)


@pytest.mark.slow
def test_peak_memory_follows_the_budget():
    """1000 classes of a ResNet-18 at 224 px, 2 images: 196 MB of layer4 gradients unchunked; under a 16 MiB
    budget the process's peak resident memory (VmHWM) grows by less than twice the budget (over the
    baseline of the model and one single-class call, in a fresh process)."""

    def peak(budget: str) -> float:
        out = subprocess.run([sys.executable, "-c", PEAK, budget], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    unchunked, chunked = peak("1e6"), peak("16")
    assert unchunked > 150, (unchunked, chunked)  # MiB: the (1000, 2, 512, 7, 7) float32 gradients (205)
    assert chunked < 32, (unchunked, chunked)  # the 16 MiB budget, room for the allocator's coarseness (9.4)
