import numpy as np
import pytest

from wsl.metrics.classification import average_precision, f1_scores, mean_average_precision

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_ap_matches_sklearn_on_random_scores():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(50) < 0.3
        s = rng.random(50)
        assert average_precision(s, y) == pytest.approx(
            sklearn_metrics.average_precision_score(y, s), abs=1e-12
        )


def test_map_and_f1_hand_case():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    m, per_class = mean_average_precision(scores, targets)
    # class 0: ranks 1 (hit), 2 (miss), 3 (hit) -> (1 + 2/3) / 2; class 1: rank 1 hit -> 1
    assert per_class[0] == pytest.approx((1 + 2 / 3) / 2) and per_class[1] == 1.0
    assert m == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    f1 = f1_scores(scores, targets)
    # at 0.5: class 0 preds {0,1} vs gt {0,2} -> tp1 fp1 fn1 -> 0.5; class 1 preds {1,2} vs {1} -> 2/3
    assert f1["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert f1["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_class_without_positive_is_left_out():
    m, ap = mean_average_precision(np.array([[0.2, 0.3], [0.4, 0.1]]), np.array([[1, 0], [0, 0]]))
    assert np.isnan(ap[1]) and m == ap[0]
    with pytest.raises(ValueError):
        mean_average_precision(np.zeros((2, 2)), np.zeros((3, 2)))
