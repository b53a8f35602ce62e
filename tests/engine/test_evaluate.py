"""The operating point of `nipad test`: what an image threshold does on labelled test images."""

import numpy as np
import pytest

from nipad.engine.calibration import ALL, Calibration, fit_thresholds
from nipad.engine.evaluate import Outputs, format_operating_points, operating_point, operating_points


def test_counts_at_a_threshold_use_above_and_add_up():
    scores = np.array([0.1, 0.4, 0.5, 0.5, 0.9, 0.2])
    labels = np.array([0, 0, 1, 0, 1, 1])
    point = operating_point(scores, labels, 0.45)
    assert point == {"image_threshold": 0.45, "defects_caught": 2, "defects_missed": 1, "false_alarms": 1,
                     "correct_passes": 2, "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}
    at = operating_point(scores, labels, 0.5)  # a score equal to the threshold is not above it
    assert (at["defects_caught"], at["false_alarms"]) == (1, 0) and at["precision"] == 1.0
    high = operating_point(scores, labels, 10.0)
    assert high["precision"] is None and high["recall"] == 0.0 and high["defects_missed"] == 3
    assert operating_point(scores[labels == 0], labels[labels == 0], 0.0)["recall"] is None
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=50), rng.random(50) < 0.3
    for t in (-5, 0.0, 0.3, 5):
        p = operating_point(s, y, t)
        assert p["defects_caught"] + p["defects_missed"] == y.sum()
        assert p["false_alarms"] + p["correct_passes"] == (~y).sum()


def test_each_class_is_judged_at_its_own_threshold_or_the_pooled_one():
    outputs = Outputs()
    for name, score, label in [("a", 1.0, 0), ("a", 3.0, 1), ("new", 1.0, 0), ("new", 3.0, 1)]:
        outputs.add(name, score, label, np.zeros((2, 2)), np.zeros((2, 2), bool), "x.png")
    t = fit_thresholds(np.array([0.0, 2.0]), np.zeros((2, 2, 2)), 0.5)
    cal = Calibration(0.5, {"a": t, ALL: t}, "x").with_manual(["a=0.5"])
    points = operating_points(outputs, cal)
    assert points["a"]["image_threshold"] == 0.5 and points["a"]["threshold_method"] == "manual"
    assert points["a"]["threshold_from"] == "class" and points["a"]["false_alarms"] == 1
    assert points["new"]["image_threshold"] == t.image_threshold and points["new"]["threshold_from"] == "pooled"
    assert points["new"]["threshold_method"] == "rate" and points["new"]["false_alarms"] == 0
    table = format_operating_points(points)
    assert "false alarms" in table and "rate (pooled)" in table
