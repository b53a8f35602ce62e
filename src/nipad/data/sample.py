"""The one record type every dataset reader yields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NORMAL = 0
ANOMALOUS = 1


@dataclass(frozen=True)
class Sample:
    """One image of a data set.

    `label` is NORMAL (0) or ANOMALOUS (1); `defect_type` is "good" for normal images; `mask_path` is None when the
    image has no pixel annotation (normal images, or data sets with image labels only); `split` is "train" or "test".
    """

    image_path: Path
    class_name: str
    label: int
    defect_type: str = "good"
    mask_path: Path | None = None
    split: str = "train"

    @property
    def is_anomalous(self) -> bool:
        return self.label == ANOMALOUS
