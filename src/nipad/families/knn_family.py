"""kNN (nipad.models.baselines.knn) as a model family: it takes --mode only."""

from __future__ import annotations

from nipad.families.patch_baselines import BaselineOptions, baseline_family
from nipad.families.registry import register

FAMILY = register(baseline_family("knn", BaselineOptions))
