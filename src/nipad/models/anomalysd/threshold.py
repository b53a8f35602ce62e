"""The two-group threshold of the prototype-guided masks and of the foreground estimate (Otsu's criterion).

The paper picks r minimising Var({E >= r}) + Var({E < r}). Written without weights that sum is smallest when a
single extreme value is cut off (a one-element group has variance 0), so, as Otsu, each group's variance is
weighted by its size: r minimises the within-group sum of squares n_lo Var(lo) + n_hi Var(hi). Exact over every
split of the sorted values in O(n log n) (histogram-based Otsu, e.g. scikit-image's, bins the values first).
"""

from __future__ import annotations

import numpy as np
import torch


def within_group_ss(values: np.ndarray, threshold: float) -> float:
    """n_lo Var(lo) + n_hi Var(hi) for the groups {v <= threshold} and {v > threshold}."""
    lo, hi = values[values <= threshold], values[values > threshold]
    return float(sum(len(g) * g.var() for g in (lo, hi) if len(g)))


def otsu_threshold(values: np.ndarray | torch.Tensor) -> float:
    """The r between two neighbouring distinct values that minimises the within-group sum of squares of
    {v <= r} and {v > r}; the maximum (nothing above it) when all values are equal."""
    v = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, np.float64)
    v = np.sort(v.ravel())
    if v.size == 0:
        raise ValueError("otsu_threshold needs at least one value")
    if v[0] == v[-1]:
        return float(v[-1])
    centred = (v - v.mean()) / (v[-1] - v[0])  # centred and scaled: the prefix sums lose no precision
    s, q = np.cumsum(centred), np.cumsum(centred * centred)
    n_lo = np.arange(1, v.size, dtype=np.float64)
    n_hi = v.size - n_lo
    s_lo, q_lo = s[:-1], q[:-1]
    s_hi, q_hi = s[-1] - s_lo, q[-1] - q_lo
    ss = (q_lo - s_lo**2 / n_lo) + (q_hi - s_hi**2 / n_hi)
    ss[v[:-1] == v[1:]] = np.inf  # a split must fall between distinct values
    i = int(np.argmin(ss))
    return float((v[i] + v[i + 1]) / 2)

