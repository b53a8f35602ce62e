"""PaDiM (nipad.models.baselines.padim) as a model family: --mode and --padim-dims."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nipad.families.flags import AT_LEAST_1, flag
from nipad.families.patch_baselines import BaselineOptions, baseline_family
from nipad.families.registry import register


@dataclass(frozen=True)
class PadimOptions(BaselineOptions):
    padim_dims: int | None = flag(metavar="D", allowed=AT_LEAST_1,
                                  help="padim: random feature channels used (default 100)")

    def method_settings(self) -> dict[str, Any]:
        return {"dims": self.padim_dims}


FAMILY = register(baseline_family("padim", PadimOptions))
