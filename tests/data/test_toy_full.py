"""The full default toy dataset: its statistics, and proof that colour alone does not solve it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsl.data.toy import TOY_CLASSES, ensure_toy
from wsl.data.toy_stats import toy_statistics
from wsl.data.voc import VOCDataset

pytestmark = pytest.mark.slow
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@pytest.fixture(scope="module")
def full_toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_toy(tmp_path_factory.mktemp("full") / "toy")  # the defaults: 1,000 + 200 images, 160 px


def colour_histograms(ds: VOCDataset, bins: int = 8) -> np.ndarray:
    """(N, bins**3) normalised joint RGB histograms."""
    out = np.zeros((len(ds), bins**3), dtype=np.float32)
    for i in range(len(ds)):
        q = ds.load_image(i).astype(np.int64) * bins // 256
        h = np.bincount(((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).ravel(), minlength=bins**3)
        out[i] = h / h.sum()
    return out


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Non-interpolated AP: mean of the precision at the rank of every positive."""
    order = np.argsort(-scores, kind="stable")
    hits = targets[order] > 0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float):
    """One-vs-rest L2-regularised logistic regression, full-batch L-BFGS to convergence; returns a scorer."""
    torch.manual_seed(0)
    xt = torch.as_tensor(np.sqrt(x), dtype=torch.float64)  # Hellinger map: a better-conditioned histogram
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    xs, yt = (xt - mu) / sd, torch.tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=1000, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: (((torch.as_tensor(np.sqrt(z), dtype=torch.float64) - mu) / sd) @ w + b).detach().numpy()


def mean_ap(scores: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([average_precision(scores[:, k], y[:, k]) for k in range(y.shape[1])]))


def test_average_precision() -> None:
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == 1.0


def test_statistics_are_reasonable(full_toy: Path) -> None:
    for split, n in (("train", 1000), ("val", 200)):
        s = toy_statistics(full_toy, split)
        assert s["images"] == n
        assert set(s["objects_per_image"]["histogram"]) == {1, 2, 3, 4}
        assert 1.8 <= s["objects_per_image"]["mean"] <= 3.0
        assert all(0.15 <= f <= 0.6 for f in s["image_frequency"].values()), s["image_frequency"]
        assert s["pair"]["P(water|boat)"] >= 0.8 and s["pair"]["P(boat|water)"] >= 0.5
        assert all(a["p10"] > 0.005 for a in s["area_fraction"].values())
        assert s["height"] == [144, 176] and s["width"] == [144, 176] and s["square_fraction"] < 0.1


def test_colour_histograms_do_not_solve_it(full_toy: Path) -> None:
    root = full_toy / "VOCdevkit" / "VOC2012"
    train, val = (VOCDataset(root, s, class_names=TOY_CLASSES) for s in ("train", "val"))
    x_tr, x_va = colour_histograms(train), colour_histograms(val)
    y_tr, y_va = train.labels(), val.labels()
    # choose the L2 weight on a held-out fifth of train, then refit on all of train
    cut = len(x_tr) * 4 // 5
    held = {
        l2: mean_ap(fit_logistic(x_tr[:cut], y_tr[:cut], l2)(x_tr[cut:]), y_tr[cut:])
        for l2 in (1e-4, 1e-3, 1e-2, 1e-1)
    }
    weakest = fit_logistic(x_tr, y_tr, min(L2_GRID))
    assert mean_ap(weakest(x_tr), y_tr) > 0.85, "the optimiser works: with little L2 it fits the training set"
    val_map = mean_ap(fit_logistic(x_tr, y_tr, max(held, key=held.get))(x_va), y_va)
    assert val_map <= 0.6, f"colour histograms reach val mAP {val_map:.3f}"
