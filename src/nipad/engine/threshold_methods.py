"""Image thresholds set other than by the false alarm rate (nipad.engine.calibration's METHODS): "f1", the
F1-maximising threshold on labelled test images (`nipad calibrate --method f1`), and "manual", the values a user gives
with `--threshold`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nipad.errors import ConfigError


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 when a score ABOVE the threshold (nipad.engine.calibration.above) is called a
    defect, from labelled images: scores (N,) and labels (N,) with 1 = defect; ValueError without a defect image or
    on non-finite scores. The candidates are sklearn's precision_recall_curve thresholds ("score >= t"); the one
    returned lies halfway between the best t and the next lower score (below every score when t is the lowest), so
    that `above` calls exactly the images scoring >= t defects (unless two scores lie within its float-noise
    TOLERANCE of each other). Ties in F1 go to the lowest threshold (most defects caught)."""
    from sklearn.metrics import precision_recall_curve

    scores, labels = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(labels).reshape(-1).astype(bool)
    if not labels.any():
        raise ValueError("no defect image: the F1-maximising threshold needs labelled defects")
    if not np.isfinite(scores).all():
        raise ValueError("non-finite scores")
    precision, recall, candidates = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=precision + recall > 0)
    best = int(np.argmax(f1))
    t = float(candidates[best])
    lower = scores[scores < t]
    threshold = (t + float(lower.max())) / 2 if lower.size else t - max(1.0, abs(t)) * 1e-3
    return threshold, float(f1[best])


def parse_thresholds(texts: Sequence[str], option: str = "--threshold") -> tuple[float | None, dict[str, float]]:
    """`--threshold` values: "T" (every class) or "CLASS=T" (one class), as (global T or None, {class: T});
    ConfigError naming the value on a non-number, a non-finite number or a repeat."""
    default: float | None = None
    per_class: dict[str, float] = {}
    for text in texts:
        name, _, value = text.rpartition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
            if not value.strip():
                raise ConfigError(f"{option} {text!r}: give a number T (every class) or CLASS=T") from None
        if not math.isfinite(number):
            raise ConfigError(f"{option} {text!r}: {value.strip()!r} is not a finite number. Fix: give T or "
                              f"CLASS=T with T a finite score, e.g. {option} 0.42")
        if "=" in text and not name:
            raise ConfigError(f"{option} {text!r}: no class name before '='")
        if (name in per_class) if name else (default is not None):
            raise ConfigError(f"{option} {text!r}: a threshold for {name or 'every class'} was given twice")
        if name:
            per_class[name] = number
        else:
            default = number
    return default, per_class
