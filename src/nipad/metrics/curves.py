"""Exact threshold-free curve metrics (AUROC, AP, F1-max) on 1-D scores and binary labels.

Written by hand because scikit-learn sorts the scores once per metric: here they are sorted ONCE (a stable
argsort; for float32 one np.sort of packed score/index keys) and every metric is derived from cumulative counts
at the distinct-threshold groups, with ties handled exactly as scikit-learn's roc_curve/auc,
average_precision_score and precision_recall_curve.
Undefined metrics (no positive or no negative label) are None, never NaN.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from nipad.errors import DataError


@dataclass(frozen=True)
class Ranking:
    """Scores sorted once, descending: `order` permutes the flat scores, `ends[k]` is the last sorted position
    of the k-th distinct score (so `ends[k] + 1` samples score >= `thresholds[k]`)."""

    order: np.ndarray
    ends: np.ndarray
    thresholds: np.ndarray

    def cumulative(self, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (flat, aligned with the ranked scores) over the samples scoring >= each threshold."""
        return np.cumsum(values.reshape(-1)[self.order], dtype=np.float64)[self.ends]


@dataclass(frozen=True)
class CurveCounts:
    """True/false positives among the samples scoring >= each distinct threshold (descending thresholds)."""

    tps: np.ndarray
    fps: np.ndarray

    @property
    def n_pos(self) -> float:
        return float(self.tps[-1])

    @property
    def n_neg(self) -> float:
        return float(self.fps[-1])


def check_finite(values: np.ndarray, what: str) -> None:
    """Raise DataError when `values` hold NaN or inf: no metric is defined on them."""
    if not np.isfinite(values).all():
        n_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise DataError(f"{what} contain {n_bad} NaN/inf value(s); fix the model output or the score normalisation.")


def as_binary(labels: np.ndarray, what: str) -> np.ndarray:
    """Labels as a bool array; raise DataError when they are not all 0/1."""
    labels = np.asarray(labels)
    if labels.dtype == np.bool_:
        return labels
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise DataError(f"{what} must be binary (0 = normal, 1 = anomalous); found values {np.unique(labels)[:5]}.")
    return labels.astype(bool)


def _descending_order_float32(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable descending argsort of float32 scores via one np.sort of uint64 keys (score bits << 32 | index).

    Same permutation as a stable argsort of -scores, ~5x faster (SIMD integer sort). Returns the order and the
    sorted keys' score words, which compare equal exactly when the scores do (-0.0 is folded into 0.0)."""
    n = flat.size
    keys = np.empty(n, dtype=np.uint64)
    words = keys.view(np.uint32).reshape(n, 2)
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    bits = (flat + np.float32(0.0)).view(np.int32)
    score_word = words[:, high].view(np.int32)
    # Order-preserving float -> int map: flip all bits of negatives, the sign bit of the rest; then invert to sort
    # descending.
    np.bitwise_or(bits >> 31, np.int32(-(2**31)), out=score_word)
    np.bitwise_xor(score_word, bits, out=score_word)
    np.invert(score_word, out=score_word)
    words[:, low] = np.arange(n, dtype=np.uint32)
    keys.sort()
    return words[:, low].astype(np.intp), words[:, high]


def rank(scores: np.ndarray) -> Ranking:
    """Sort the (finite) scores once, descending, and find the distinct-threshold groups."""
    flat = np.asarray(scores).reshape(-1)
    if flat.size == 0:
        raise DataError("no scores to evaluate: the input array is empty.")
    if flat.dtype == np.float32 and flat.size < 2**32:
        order, ranked = _descending_order_float32(flat)
    else:
        order = np.argsort(flat, kind="stable")[::-1]
        ranked = flat[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), flat.size - 1)
    return Ranking(order=order, ends=ends, thresholds=flat[order[ends]])


def curve_counts(ranking: Ranking, labels: np.ndarray) -> CurveCounts:
    """Cumulative true/false positive counts at each distinct threshold of `ranking`."""
    tps = np.cumsum(labels.reshape(-1)[ranking.order], dtype=np.int64)[ranking.ends].astype(np.float64)
    fps = (ranking.ends + 1).astype(np.float64) - tps
    return CurveCounts(tps=tps, fps=fps)


def auroc_from_counts(counts: CurveCounts) -> float | None:
    """Trapezoid area under the ROC curve through (0, 0) and every distinct threshold (as sklearn's auc)."""
    if counts.n_pos == 0 or counts.n_neg == 0:
        return None
    tps = np.concatenate(([0.0], counts.tps))
    fps = np.concatenate(([0.0], counts.fps))
    area = np.sum(np.diff(fps) * (tps[1:] + tps[:-1])) / 2.0
    return float(area / (counts.n_pos * counts.n_neg))


def average_precision_from_counts(counts: CurveCounts) -> float | None:
    """Step-wise AP = sum_k (R_k - R_{k-1}) * P_k over distinct thresholds (as sklearn's average_precision_score)."""
    if counts.n_pos == 0:
        return None
    precision = counts.tps / (counts.tps + counts.fps)
    recall_steps = np.diff(counts.tps, prepend=0.0)
    return float(np.sum(recall_steps * precision) / counts.n_pos)


def f1_max_from_counts(counts: CurveCounts) -> float | None:
    """Max over distinct thresholds of 2PR/(P+R) = 2 TP / (predicted positives + actual positives)."""
    if counts.n_pos == 0:
        return None
    return float(np.max(2.0 * counts.tps / (counts.tps + counts.fps + counts.n_pos)))


def _counts(scores: np.ndarray, labels: np.ndarray) -> CurveCounts:
    scores = np.asarray(scores)
    labels = as_binary(labels, "labels")
    if scores.shape != labels.shape:
        raise DataError(f"scores {scores.shape} and labels {labels.shape} must have the same shape.")
    check_finite(scores, "scores")
    return curve_counts(rank(scores), labels)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one label is present."""
    return auroc_from_counts(_counts(scores, labels))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Average precision (area under the step PR curve); None without positives."""
    return average_precision_from_counts(_counts(scores, labels))


def f1_max(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Best F1 over all thresholds; None without positives."""
    return f1_max_from_counts(_counts(scores, labels))
