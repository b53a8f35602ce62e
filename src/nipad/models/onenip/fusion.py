"""The validated fusion: which of a detector's maps make its anomaly map, chosen on the run's own validation set.

Each map (reconstruction error, refiner, prompt-token matching) is standardised on held-out normal training images:
shifted by its mean pixel and divided by the 90th percentile of the normal images' scores, so one unit is "as high
as a normal image's peak" in every map. The anomaly map is the mean of the standardised maps whose image score
tells the held-out normals from their pseudo-anomalous copies (validation image AUROC at least `MIN_AUROC`); a map
below it, such as a refiner stuck at the empty map, gets weight 0. Equal weights rather than weights fitted to the
pseudo anomalies, because the refiner and the restoration stream were trained on pseudo anomalies from the same
generator: the validation set flatters them, and the one map that never saw them (matching) would lose every fit.

The image score may come from the matching map alone (`score_map` `match`), kept only when it passes the same
validation (the fused map's score otherwise). The reason is the same bias: the validation set cannot rank a map
trained on its generator against one that was not, and a nearest-normal-token distance is the field's strongest
image score (PatchCore over reconstruction on MVTec AD, unified: 98.8 against OneNIP's 97.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor

MAPS = ("rec", "ref", "match")
# A map (or the fused map) that tells held-out normals from pseudo anomalies no better than this is noise.
MIN_AUROC = 0.7
NORMAL_PEAK = 0.9  # the quantile of the normal images' scores that one standardised unit stands for


def image_score(anomaly_map: Tensor, pool: int) -> Tensor:
    """Max of the `pool` x `pool` average-pooled map (stride 1), the authors' image score; (B, 1, H, W) -> (B,)."""
    k = min(pool, anomaly_map.shape[-1])
    return F.avg_pool2d(anomaly_map, k, stride=1).flatten(1).max(dim=1).values


def fuse(maps: Sequence[Tensor | None], weights: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """sum_i weights[i] * (maps[i] - shift[i]) / scale[i] over the maps that are present (None: the model has no
    such map)."""
    present = [(i, m) for i, m in enumerate(maps) if m is not None]
    return cast(Tensor, sum(weights[i] * (m - shift[i]) / scale[i] for i, m in present))  # the rec map is always there


@dataclass(frozen=True)
class FusionFit:
    """The fitted weights, shifts and scales (in `MAPS` order), the weights of the maps the image score is taken
    from, and the validation image AUROC of each map and of the fused map."""

    weights: Tensor
    shift: Tensor
    scale: Tensor
    auroc: dict[str, float]
    fused_auroc: float
    score_weights: Tensor

    def describe(self) -> str:
        kept = [f"{name} {100 * a:.1f}" + ("" if float(w) > 0 else " (dropped)")
                for name, a, w in zip(self.auroc, self.auroc.values(), self.weights) if not np.isnan(a)]
        scored = "" if torch.equal(self.score_weights, self.weights) else "; image score from the matching map"
        return f"validation image AUROC: {', '.join(kept)}; fused {100 * self.fused_auroc:.1f}{scored}"


def auroc(normal: Tensor, anomalous: Tensor) -> float:
    """Image AUROC of normal (N,) against anomalous (M,) scores; 0.5 for scores that do not vary."""
    scores = torch.cat([normal, anomalous]).double().numpy()
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    return 0.5 if np.ptp(scores) == 0 else float(roc_auc_score(labels, scores))


def fit_fusion(normal: Sequence[Tensor | None], anomalous: Sequence[Tensor | None], pool: int,
               score_from_match: bool = False) -> FusionFit:
    """Standardise each map on the held-out `normal` images' maps (B, 1, S, S) and weight equally those that
    detect the `anomalous` (pseudo-anomalous) images; maps given as None get weight 0. `score_from_match`: the image
    score's weights pick the matching map alone when it detects them too, else they are the map's."""
    n = len(MAPS)
    shift, scale, weights = torch.zeros(n), torch.ones(n), torch.zeros(n)
    aurocs: dict[str, float] = {}
    for i, (name, good, bad) in enumerate(zip(MAPS, normal, anomalous)):
        if good is None or bad is None:
            aurocs[name] = float("nan")
            continue
        shift[i] = good.float().mean()
        peaks = image_score(good.float() - shift[i], pool)
        scale[i] = torch.quantile(peaks, NORMAL_PEAK).clamp(min=1e-6)
        aurocs[name] = auroc(peaks, image_score(bad.float() - shift[i], pool))
        weights[i] = float(aurocs[name] >= MIN_AUROC)
    if weights.sum() == 0:  # no map detects anything: keep them all, so the fused AUROC shows it and the run is refused
        weights = torch.tensor([0.0 if np.isnan(aurocs[name]) else 1.0 for name in MAPS])
    weights = weights / weights.sum()
    fused = [image_score(fuse(maps, weights, shift, scale), pool) for maps in (normal, anomalous)]
    match = MAPS.index("match")
    score_weights = (torch.eye(n)[match] if score_from_match and aurocs["match"] >= MIN_AUROC else weights.clone())
    return FusionFit(weights, shift, scale, aurocs, auroc(*fused), score_weights)
