"""Thresholds set other than by the false alarm rate: F1-max on labelled images, and the values given by hand."""

import numpy as np
import pytest

from nipad.engine.calibration import above
from nipad.engine.threshold_methods import f1_threshold, parse_thresholds
from nipad.errors import ConfigError


def _f1(flagged: np.ndarray, labels: np.ndarray) -> float:
    tp = (flagged & labels).sum()
    return 2 * tp / (flagged.sum() + labels.sum()) if tp else 0.0


@pytest.mark.parametrize("seed", range(6))
def test_f1_threshold_is_the_brute_force_f1_maximum_under_above(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(40) < 0.4
    labels[0] = True
    scores = np.round(rng.normal(size=40) + 1.5 * labels, 1)  # rounded: ties between images too
    threshold, f1 = f1_threshold(scores, labels.astype(int))
    # every possible split: below every score, and at each distinct score ("above it" flags the higher ones)
    candidates = [scores.min() - 1, *np.unique(scores)]
    best = max(_f1(above(scores, t), labels) for t in candidates)
    assert f1 == pytest.approx(best) and _f1(above(scores, threshold), labels) == pytest.approx(best)


def test_f1_threshold_lies_between_the_classes_when_they_separate():
    threshold, f1 = f1_threshold(np.array([0.1, 0.2, 0.3, 0.7, 0.9]), np.array([0, 0, 0, 1, 1]))
    assert threshold == pytest.approx(0.5) and f1 == 1.0
    low, _ = f1_threshold(np.array([2.0, 3.0]), np.array([1, 1]))  # all defects: flag everything
    assert low < 2.0
    with pytest.raises(ValueError, match="no defect"):
        f1_threshold(np.array([1.0, 2.0]), np.array([0, 0]))


def test_threshold_values_are_one_for_every_class_or_one_per_class_and_bad_ones_are_named():
    assert parse_thresholds(["3", "b=7.5", "x=y=1"]) == (3.0, {"b": 7.5, "x=y": 1.0})
    assert parse_thresholds([]) == (None, {})
    for texts, message in ((["b="], "give a number T"), (["b=nan"], "is not a finite number"),
                           (["=3"], "no class name before"), (["3", "4"], "given twice"),
                           (["b=1", "b=2"], "for b was given twice")):
        with pytest.raises(ConfigError, match=message):
            parse_thresholds(texts, "--threshold")
