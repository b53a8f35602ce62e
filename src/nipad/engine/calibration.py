"""Thresholds set from NORMAL images only (never the test set) and anomalib-style normalised scores.

Per class, the image threshold is the (1 - rate) quantile of the normal images' scores and the pixel threshold the
(1 - rate) quantile of their map values, so a stated fraction `rate` (default 1%) of normal images / pixels raise
a false alarm. Normalisation as anomalib's min-max: n = clip((x - threshold) / (max - min) + 0.5, 0, 1), so the
threshold maps to 0.5; min and max are those of the calibration images (per class, image and pixel level).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nipad.data.sample import Sample
from nipad.errors import CheckpointError, ConfigError
from nipad.utils.io import atomic_write_json

FILE = "calibration.json"
ALL = "__all__"


@dataclass(frozen=True)
class Thresholds:
    image_threshold: float
    pixel_threshold: float
    image_min: float
    image_max: float
    pixel_min: float
    pixel_max: float
    n_images: int


def _normalise(x: np.ndarray, threshold: float, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - threshold) / max(hi - lo, 1e-12) + 0.5, 0.0, 1.0)


def fit_thresholds(scores: np.ndarray, maps: np.ndarray, rate: float) -> Thresholds:
    """Thresholds of one group of normal images: scores (N,), maps (N, H, W)."""
    q = 1.0 - rate
    return Thresholds(
        image_threshold=float(np.quantile(scores, q, method="higher")),
        pixel_threshold=float(np.quantile(maps, q, method="higher")),
        image_min=float(scores.min()), image_max=float(scores.max()),
        pixel_min=float(maps.min()), pixel_max=float(maps.max()),
        n_images=int(len(scores)),
    )


@dataclass
class Calibration:
    """Per-class thresholds plus `__all__` (every calibration image pooled) for classes without their own."""

    rate: float
    classes: dict[str, Thresholds]
    source: str

    def for_class(self, name: str | None) -> Thresholds:
        return self.classes.get(name or ALL, self.classes[ALL])

    def apply(self, scores: np.ndarray, maps: np.ndarray, classes: Sequence[str | None]) -> dict[str, np.ndarray]:
        """pred_label (B,), pred_mask (B, H, W), normalised score (B,) and normalised map (B, H, W)."""
        t = [self.for_class(c) for c in classes]
        img_t = np.array([x.image_threshold for x in t])[:, None, None]
        return {
            "pred_label": scores >= img_t[:, 0, 0],
            "pred_mask": maps >= np.array([x.pixel_threshold for x in t])[:, None, None],
            "pred_score_normalized": np.array([_normalise(s, x.image_threshold, x.image_min, x.image_max)
                                               for s, x in zip(scores, t)]),
            "anomaly_map_normalized": np.stack([_normalise(m, x.pixel_threshold, x.pixel_min, x.pixel_max)
                                                for m, x in zip(maps, t)]) if len(t) else maps,
        }

    def merged(self, other: Calibration) -> Calibration:
        """This calibration with `other`'s classes added or replaced (and its pooled entry when it has none)."""
        classes = {**self.classes, **{k: v for k, v in other.classes.items() if k != ALL}}
        return Calibration(self.rate, classes, self.source)

    def to_dict(self) -> dict:
        """The calibration.json contents (also embedded in an exported model's sidecar)."""
        return {"target_false_alarm_rate": self.rate, "source": self.source,
                "classes": {k: asdict(v) for k, v in self.classes.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Inverse of `to_dict`; KeyError / TypeError / ValueError on malformed data."""
        return cls(float(data["target_false_alarm_rate"]),
                   {k: Thresholds(**v) for k, v in data["classes"].items()}, data["source"])

    def save(self, run_dir: str | Path) -> None:
        atomic_write_json(Path(run_dir) / FILE, self.to_dict())

    @classmethod
    def load(cls, run_dir: str | Path) -> Calibration:
        path = Path(run_dir) / FILE
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; run `nipad calibrate {run_dir} --data ROOT` on normal images")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is corrupt ({err}); redo it with `nipad calibrate`") from err


@torch.no_grad()
def calibrate(detector, samples: Sequence[Sample], rate: float = 0.01, source: str = "",
              batch_size: int = 8) -> Calibration:
    """Run `detector` on normal `samples` and fit thresholds per (known) class and pooled."""
    from nipad.engine.evaluate import infer

    if not 0.0 < rate < 1.0:
        raise ConfigError(f"the target false alarm rate must be in (0, 1), got {rate}")
    if not samples:
        raise ConfigError("calibration needs at least one normal image")
    outputs = infer(detector, samples, batch_size)
    classes = {name: fit_thresholds(np.asarray(outputs.scores[name]), np.stack(outputs.maps[name]), rate)
               for name in outputs.scores}
    classes[ALL] = fit_thresholds(np.concatenate([np.asarray(outputs.scores[n]) for n in outputs.scores]),
                                  np.concatenate([np.stack(outputs.maps[n]) for n in outputs.maps]), rate)
    return Calibration(rate, classes, source or f"{len(samples)} normal images")
