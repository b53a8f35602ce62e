"""PatchCore (nipad.models.baselines.patchcore) as a model family: --mode and --coreset-ratio."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nipad.families.flags import Range, flag
from nipad.families.patch_baselines import BaselineOptions, baseline_family
from nipad.families.registry import register


@dataclass(frozen=True)
class PatchCoreOptions(BaselineOptions):
    coreset_ratio: float | None = flag(metavar="R", allowed=Range(0, 1, open_low=True),
                                       help="patchcore: fraction of the training patches kept in the memory bank "
                                            "(default 0.01)")

    def method_settings(self) -> dict[str, Any]:
        return {"coreset_ratio": self.coreset_ratio}


FAMILY = register(baseline_family("patchcore", PatchCoreOptions))
