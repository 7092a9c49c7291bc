"""Targets (what a class's score is) against pytorch-grad-cam's targets, on tiny networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    RawScoresOutputTarget,
)
from torch import nn

from wsl.cam import CAMExtractor
from wsl.cam.targets import (
    TARGETS,
    ClassScore,
    CosineSimilarity,
    OutputFunction,
    SigmoidProbability,
    SoftmaxProbability,
    make_target,
)

TOL = 1e-4


class SigmoidTarget:
    """The multi-label probability as a pytorch-grad-cam target (it has none): sigmoid of one logit."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model_output[..., self.category])


class SimilarityToConceptTarget:
    """pytorch-grad-cam's embedding-similarity tutorial target: cosine of the output with a concept."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return nn.CosineSimilarity(dim=0)(model_output, self.features)


class Binary(nn.Module):
    """The tiny CNN with one output (a binary classifier)."""

    def __init__(self, tiny: nn.Module) -> None:
        super().__init__()
        self.features, self.pool = tiny.features, tiny.pool
        self.fc = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@pytest.fixture(scope="module")
def tiny(build_model):
    return build_model("tiny")


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))


def reference(model, layer, x, targets_per_column, peer=GradCAM):
    """pytorch-grad-cam's maps: one call per column of targets -> (B, K, H, W)."""
    with peer(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return np.stack([cam(input_tensor=x, targets=col) for col in targets_per_column], 1)


def ours(model, layer, x, classes, target, postprocess, method="gradcam"):
    maps = CAMExtractor(model, method, layer, target=target)(x, classes)
    return postprocess(maps.flatten(0, 1), x.shape[-2:]).reshape(*maps.shape[:2], *x.shape[-2:])


CLASSES = torch.tensor([[0, 4], [2, 5], [3, 1]])


@pytest.mark.parametrize(
    "target, peer_target",
    [
        ("logit", ClassifierOutputTarget),
        ("softmax", ClassifierOutputSoftmaxTarget),
        ("sigmoid", SigmoidTarget),
    ],
)
def test_class_targets_match_pytorch_grad_cam(tiny, x, postprocess, max_diff, target, peer_target):
    expected = reference(tiny, "features", x, [[peer_target(int(c)) for c in col] for col in CLASSES.T])
    got = ours(tiny, "features", x, CLASSES, target, postprocess)
    assert got.max() > 0.5
    assert max_diff(got, expected) <= TOL


def test_softmax_target_changes_the_maps(tiny, x):
    """Not a relabelled logit: the softmax's gradient subtracts the other classes' gradients."""
    logit = CAMExtractor(tiny, "gradcam", "features", relu=False)(x, CLASSES)
    soft = CAMExtractor(tiny, "gradcam", "features", relu=False, target="softmax")(x, CLASSES)
    sig = CAMExtractor(tiny, "gradcam", "features", relu=False, target="sigmoid")(x, CLASSES)
    corr = [float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) for a, b in zip(logit, soft)]
    assert min(corr) < 0.99
    # the sigmoid only rescales each (image, class) gradient by s (1 - s) > 0: same signed map up to it
    s = torch.sigmoid(tiny(x)).gather(1, CLASSES)
    assert torch.allclose(sig, logit * (s * (1 - s))[:, :, None, None], rtol=1e-4, atol=1e-7)


def test_binary_classifier_output_target(tiny, x, postprocess, max_diff):
    """One output: class 0 is BinaryClassifierOutputTarget(1); its negation (a function target) is 0."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = Binary(tiny).eval()
    zero = torch.zeros(3, 1, dtype=torch.long)
    for category, target in [(1, "logit"), (0, OutputFunction(lambda out: -out))]:
        expected = reference(model, "features", x, [[BinaryClassifierOutputTarget(category)] * 3])
        got = ours(model, "features", x, zero, target, postprocess)
        assert got.max() > 0.5
        assert max_diff(got, expected) <= TOL


def test_function_target_matches_raw_scores_target_and_its_own_columns(tiny, x, postprocess, max_diff):
    """A function of the output: here the sum of two logits, a score pytorch-grad-cam gets from
    ``RawScoresOutputTarget`` on a model whose output is that sum."""

    def pair_sum(out: torch.Tensor) -> torch.Tensor:
        return (out[:, 1] + out[:, 3])[:, None]

    class Summed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny

        def forward(self, inp):
            return pair_sum(self.inner(inp))[:, 0]

    expected = reference(Summed(), "inner.features", x, [[RawScoresOutputTarget()] * 3])
    got = ours(tiny, "features", x, torch.zeros(3, 1, dtype=torch.long), pair_sum, postprocess)
    assert max_diff(got, expected) <= TOL
    all_classes = CAMExtractor(tiny, "gradcam", "features", target=pair_sum)(x)
    assert all_classes.shape == (3, 1, 12, 12)  # "all classes" are the function's columns


def test_cosine_similarity_target(postprocess, max_diff):
    """An embedding network (GAP + linear to D = 8) explained by its similarity to reference embeddings."""
    with torch.random.fork_rng():
        torch.manual_seed(4)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 8),
        ).eval()  # fmt: skip
        concepts = torch.randn(3, 8)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    classes = torch.tensor([[0, 2], [1, 0]])
    cols = [[SimilarityToConceptTarget(concepts[int(c)]) for c in col] for col in classes.T]
    expected = reference(model, "2", x, cols)
    got = ours(model, "2", x, classes, CosineSimilarity(concepts), postprocess)
    assert got.max() > 0.5
    assert max_diff(got, expected) <= TOL
    assert CAMExtractor(model, "gradcam", "2", target=CosineSimilarity(concepts))(x).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        CAMExtractor(model, "gradcam", "2", target=CosineSimilarity(concepts))(x, torch.tensor([[3], [0]]))
    with pytest.raises(ValueError, match="embeddings"):
        CAMExtractor(model, "gradcam", "2", target=CosineSimilarity(torch.randn(3, 5)))(x, classes)


def test_score_cam_uses_the_target(tiny, x, postprocess, max_diff):
    """The forward-only methods score the masked inputs with the same target (softmax here)."""
    cols = [[ClassifierOutputSoftmaxTarget(int(c)) for c in col] for col in CLASSES.T]
    expected = reference(tiny, "features", x, cols, peer=ScoreCAM)
    got = ours(tiny, "features", x, CLASSES, "softmax", postprocess, method="scorecam")
    assert max_diff(got, expected) <= 1e-3  # ScoreCAM's softmax over channels amplifies float noise


def test_segmentation_probability_target_sums_over_the_mask():
    out = torch.randn(2, 4, 5, 5)
    index = torch.tensor([[1, 3], [0, 2]])
    mask = (torch.rand(2, 2, 5, 5, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    prob = out.softmax(1)
    expected = torch.stack(
        [torch.stack([(prob[b, index[b, k]] * mask[b, k]).sum() for k in range(2)]) for b in range(2)]
    )
    assert torch.allclose(SoftmaxProbability()(out, index, mask), expected)
    assert torch.allclose(ClassScore()(out, index, mask), torch.stack(
        [torch.stack([(out[b, index[b, k]] * mask[b, k]).sum() for k in range(2)]) for b in range(2)]
    ))  # fmt: skip


def test_make_target():
    assert TARGETS == ("logit", "softmax", "sigmoid")
    assert isinstance(make_target(None), ClassScore) and isinstance(
        make_target("sigmoid"), SigmoidProbability
    )
    fn = OutputFunction(torch.tanh)
    assert make_target(fn) is fn and isinstance(make_target(torch.tanh), OutputFunction)
    with pytest.raises(ValueError, match="unknown target 'probability'"):
        make_target("probability")
    with pytest.raises(TypeError):
        make_target(3)
    with pytest.raises(ValueError, match="must return"):
        OutputFunction(lambda out: out[0])(torch.randn(2, 3), torch.zeros(2, 1, dtype=torch.long))
