"""Curve metrics against scikit-learn: random data, heavy ties, one-label and one-positive cases, bad input."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from nipad.errors import DataError
from nipad.metrics import auroc, average_precision, f1_max
from nipad.metrics.curves import rank


def sklearn_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def random_case(seed: int, n: int, decimals: int | None, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < rng.uniform(0.05, 0.6)
    scores = rng.normal(size=n) + labels * rng.uniform(0.0, 2.0)
    if decimals is not None:
        scores = np.round(scores, decimals)
    return scores.astype(dtype), labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_sklearn(seed: int, decimals: int | None, dtype) -> None:
    scores, labels = random_case(seed, 3000, decimals, dtype)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert f1_max(scores, labels) == pytest.approx(sklearn_f1_max(labels, scores), abs=1e-12)


def test_integer_labels_and_int_scores_accepted() -> None:
    scores, labels = random_case(7, 500, 0)
    int_scores, int_labels = scores.astype(np.int64), labels.astype(np.uint8)
    assert auroc(int_scores, int_labels) == pytest.approx(roc_auc_score(int_labels, int_scores), abs=1e-12)


def test_all_negative_labels_are_undefined() -> None:
    scores = np.linspace(0, 1, 50)
    labels = np.zeros(50, dtype=bool)
    assert auroc(scores, labels) is None
    assert average_precision(scores, labels) is None
    assert f1_max(scores, labels) is None


def test_all_positive_labels() -> None:
    scores = np.round(np.random.default_rng(0).random(50), 1)
    labels = np.ones(50, dtype=bool)
    assert auroc(scores, labels) is None
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores))
    assert f1_max(scores, labels) == pytest.approx(sklearn_f1_max(labels, scores))


def test_constant_scores() -> None:
    labels = np.zeros(100, dtype=bool)
    labels[:13] = True
    scores = np.full(100, 0.25, dtype=np.float32)
    assert auroc(scores, labels) == pytest.approx(0.5)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores))
    assert f1_max(scores, labels) == pytest.approx(sklearn_f1_max(labels, scores))


@pytest.mark.parametrize("position", [0, 1234, 4999])
def test_one_positive_pixel(position: int) -> None:
    rng = np.random.default_rng(position)
    scores = np.round(rng.random(5000), 2).astype(np.float32)
    labels = np.zeros(5000, dtype=bool)
    labels[position] = True
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert f1_max(scores, labels) == pytest.approx(sklearn_f1_max(labels, scores), abs=1e-12)


def test_perfect_and_inverted_separation_not_flipped() -> None:
    labels = np.array([0, 0, 0, 1, 1], dtype=bool)
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auroc(scores, labels) == 1.0
    assert auroc(-scores, labels) == 0.0
    assert f1_max(scores, labels) == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(bad: float) -> None:
    scores = np.linspace(0, 1, 10)
    scores[3] = bad
    labels = np.arange(10) % 2
    for metric in (auroc, average_precision, f1_max):
        with pytest.raises(DataError, match="NaN/inf"):
            metric(scores, labels)


def test_bad_labels_and_shapes_raise() -> None:
    with pytest.raises(DataError, match="binary"):
        auroc(np.arange(4.0), np.array([0, 1, 2, 1]))
    with pytest.raises(DataError, match="same shape"):
        auroc(np.arange(4.0), np.array([0, 1, 1]))
    with pytest.raises(DataError, match="empty"):
        auroc(np.array([]), np.array([], dtype=bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_is_a_stable_descending_argsort(dtype) -> None:
    rng = np.random.default_rng(1)
    scores = np.concatenate(
        [np.round(rng.normal(size=2000), 1), [0.0, -0.0, 1e-42, -1e-42, 3e38, -3e38, 0.0, -0.0]]
    ).astype(dtype)
    ranking = rank(scores)
    expected = np.argsort(-scores, kind="stable")
    if dtype is np.float32:
        np.testing.assert_array_equal(ranking.order, expected)
    else:
        np.testing.assert_array_equal(scores[ranking.order], scores[expected])
    np.testing.assert_array_equal(ranking.thresholds, np.unique(scores)[::-1])
    assert ranking.ends[-1] == scores.size - 1
