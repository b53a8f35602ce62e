"""Thresholds set from NORMAL images only (never the test set) and anomalib-style normalised scores.

Per class, the image threshold is the (1 - rate) quantile of the normal images' scores and the pixel threshold the
(1 - rate) quantile of their map values, and a score or map value ABOVE its threshold is anomalous, so at most a
stated fraction `rate` (default 1%) of the normal calibration images / pixels raise a false alarm, and none at all
when there are fewer than 1/rate of them (the threshold is then their highest score: `calibrate` warns that the rate
cannot be measured from so few). Normalisation as anomalib's min-max: n = clip((x - threshold) / (max - min) + 0.5,
0, 1), so the threshold maps to 0.5; min and max are those of the calibration images (per class, image and pixel
level). "Above" allows for float noise: a value within a relative TOLERANCE of its threshold is not above it, since
the same image scored in batches of other sizes differs in the last float32 bits (OneNIP: up to 7e-8 relative, as
measured), which must not flip a calibration image to anomalous. Thresholds are finite numbers or an error, never NaN.

Each class's image threshold records the method that set it (`method` in calibration.json; files without it are
"rate"): "rate" as above, "f1" the F1-maximising threshold on labelled test images (`nipad calibrate --method f1`),
"manual" a value the user gave (`--threshold`, `Calibration.with_image_thresholds`, never saved); the last two are
found by nipad.engine.threshold_methods.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nipad.data.sample import Sample
from nipad.engine.threshold_methods import parse_thresholds
from nipad.errors import CheckpointError, ConfigError, DataError
from nipad.runs import integrity
from nipad.runs.file_names import ALL, CALIBRATION as FILE  # ALL: users see POOLED instead (`shown_class`)
from nipad.utils.io import read_json

if TYPE_CHECKING:  # the ONNX runner reads calibrations without any model code
    from nipad.models.output import AnomalyModel

POOLED = "all classes (pooled)"
TOLERANCE = 1e-6  # relative; see the module docstring
METHODS = {"rate": "false-alarm rate on normal images", "f1": "F1-max on labelled test images",
           "manual": "set by hand (--threshold)"}


@dataclass(frozen=True)
class Thresholds:
    image_threshold: float
    pixel_threshold: float
    image_min: float
    image_max: float
    pixel_min: float
    pixel_max: float
    n_images: int
    method: str = "rate"  # what set image_threshold: a key of METHODS (the pixel threshold is always "rate")

    def too_few(self, rate: float) -> bool:
        """Whether fewer than 1/rate images set these thresholds, so the rate cannot be measured on them (only
        said of thresholds set by the rate)."""
        return self.method == "rate" and self.n_images * rate < 1

    def finite(self) -> bool:
        return all(math.isfinite(getattr(self, f.name)) for f in fields(self) if f.name not in ("method", "n_images"))


def shown_class(name: str | None) -> str:
    """The name a user sees for a class of thresholds: the pooled entry (ALL, which calibration.json keeps as its
    key) in words, any other class as it is."""
    return POOLED if name in (ALL, None) else name


def above(values: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
    """Whether `values` lie above `threshold` by more than float noise (TOLERANCE, relative)."""
    return values > threshold + TOLERANCE * np.abs(threshold)


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
        n_images=len(scores),
    )


@dataclass
class Calibration:
    """Per-class thresholds plus `__all__` (every calibration image pooled) for classes without their own."""

    rate: float
    classes: dict[str, Thresholds]
    source: str

    def for_class(self, name: str | None) -> Thresholds:
        return self.classes.get(name or ALL, self.classes[ALL])

    def too_few_note(self, names: Sequence[str] | None = None) -> str | None:
        """A sentence saying which of `names` (default: all classes) got thresholds from too few images, or None."""
        names = [n for n in (names if names is not None else self.classes) if n in self.classes]
        if ALL in names and len(names) > 1:
            names.remove(ALL)  # the pooled entry has the most images of all
        thin = [(n, self.classes[n].n_images) for n in names if self.classes[n].too_few(self.rate)]
        if not thin:
            return None
        listed = ", ".join(f"{shown_class(n)} ({k} image{'s' * (k != 1)})" for n, k in thin)
        worst = min(k for _, k in thin)
        return (f"thresholds of {listed} come from fewer normal images than the {math.ceil(1 / self.rate)} needed to "
                f"measure a {100 * self.rate:g}% false alarm rate: each is the highest score of its images, so expect "
                f"up to 1 in {worst + 1} new normal images to be flagged. Fix: calibrate on more normal images "
                f"(`nipad calibrate RUN_DIR --data ROOT`)")

    def apply(self, scores: np.ndarray, maps: np.ndarray, classes: Sequence[str | None]) -> dict[str, np.ndarray]:
        """pred_label (B,), pred_mask (B, H, W), normalised score (B,) and normalised map (B, H, W); anomalous means
        ABOVE the threshold, so no calibration image is flagged when the threshold is their highest score."""
        t = [self.for_class(c) for c in classes]
        img_t = np.array([x.image_threshold for x in t])[:, None, None]
        return {
            "pred_label": above(scores, img_t[:, 0, 0]),
            "pred_mask": above(maps, np.array([x.pixel_threshold for x in t])[:, None, None]),
            "pred_score_normalized": np.array([_normalise(s, x.image_threshold, x.image_min, x.image_max)
                                               for s, x in zip(scores, t)]),
            "anomaly_map_normalized": np.stack([_normalise(m, x.pixel_threshold, x.pixel_min, x.pixel_max)
                                                for m, x in zip(maps, t)]) if len(t) else maps,
        }

    def with_image_thresholds(self, per_class: Mapping[str, float] | None = None, default: float | None = None,
                              known: Sequence[str] = ()) -> Calibration:
        """A copy whose image thresholds are set by hand (method "manual"): `default` for every class (pooled
        included), then `per_class` {class: threshold}. A class named in `per_class` must be calibrated or in
        `known` (classes the model knows, e.g. its prompt classes); one known but not calibrated gets the pooled
        thresholds with its own image threshold. Pixel thresholds and the normalisation span stay, so the given
        threshold maps to 0.5. ConfigError naming the value and the known classes on an unknown class or a
        non-finite threshold."""
        names = sorted((set(self.classes) | set(known)) - {ALL})
        given = {**dict(per_class or {}), **({"": default} if default is not None else {})}
        for name, value in given.items():
            try:
                given[name] = float(value)
            except (TypeError, ValueError):
                given[name] = math.nan
            if not math.isfinite(given[name]):
                raise ConfigError(f"threshold {f'{name}=' if name else ''}{value!r} is not a finite number")
        per_class = {k: v for k, v in given.items() if k}
        unknown = sorted(set(per_class) - set(names))
        if unknown:
            raise ConfigError(f"threshold {', '.join(f'{n}={per_class[n]:g}' for n in unknown)}: the model has no "
                              f"class {', '.join(map(repr, unknown))} (its classes: {', '.join(names) or 'none'})")
        classes = dict(self.classes)
        if default is not None:
            classes = {k: replace(t, image_threshold=float(default), method="manual") for k, t in classes.items()}
        for name, value in per_class.items():
            base = classes.get(name, self.classes[ALL])
            classes[name] = replace(base, image_threshold=float(value), method="manual")
        return Calibration(self.rate, classes, self.source)

    def with_manual(self, texts: Sequence[str] | None, known: Sequence[str] = ()) -> Calibration:
        """`with_image_thresholds` from `--threshold` values ("T" or "CLASS=T"); this calibration when none."""
        if not texts:
            return self
        default, per_class = parse_thresholds(texts)
        return self.with_image_thresholds(per_class, default, known)

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
        """Inverse of `to_dict`; KeyError / TypeError / ValueError on malformed data or a non-finite threshold."""
        out = cls(float(data["target_false_alarm_rate"]),
                  {k: Thresholds(**v) for k, v in data["classes"].items()}, data["source"])
        out.check()
        return out

    def check(self) -> None:
        """ValueError unless the rate is in (0, 1), the pooled entry exists and every threshold is finite."""
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"target false alarm rate {self.rate} is not in (0, 1)")
        if ALL not in self.classes:
            raise ValueError(f"no pooled thresholds ({ALL!r})")
        bad = [name for name, t in self.classes.items() if not t.finite()]
        if bad:
            raise ValueError(f"non-finite (NaN or infinite) thresholds for {', '.join(map(shown_class, bad))}")
        odd = sorted({t.method for t in self.classes.values()} - set(METHODS))
        if odd:
            raise ValueError(f"unknown threshold method {', '.join(map(repr, odd))} (known: {', '.join(METHODS)})")

    def save(self, run_dir: str | Path) -> None:
        """Write RUN_DIR/calibration.json (hash recorded in the run's manifest); CheckpointError if not finite."""
        try:
            self.check()
        except ValueError as err:
            raise CheckpointError(f"refusing to write {Path(run_dir) / FILE}: {err}") from err
        integrity.write_json(run_dir, FILE, self.to_dict())

    @classmethod
    def load(cls, run_dir: str | Path) -> Calibration:
        return integrity.consistent(run_dir, lambda: cls._read(run_dir))

    @classmethod
    def _read(cls, run_dir: str | Path) -> Calibration:
        path = Path(run_dir) / FILE
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; run `nipad calibrate {run_dir} --data ROOT` on normal images")
        integrity.verify(run_dir, FILE)
        try:
            return cls.from_dict(read_json(path))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path} is corrupt ({err}); redo it with `nipad calibrate`") from err


@torch.no_grad()
def calibrate(detector: AnomalyModel, samples: Sequence[Sample], rate: float = 0.01, source: str = "",
              batch_size: int = 8) -> Calibration:
    """Run `detector` on normal `samples` and fit thresholds per (known) class and pooled; warns when a class has
    too few images to measure `rate`; DataError when no image could be read, CheckpointError (from `infer`) when
    the model gives a non-finite score or map."""
    from nipad.engine.evaluate import infer

    if not 0.0 < rate < 1.0:
        raise ConfigError(f"the target false alarm rate must be in (0, 1), got {rate}")
    if not samples:
        raise ConfigError("calibration needs at least one normal image")
    outputs = infer(detector, samples, batch_size, desc="calibrating")
    if not outputs.scores:
        path, reason = outputs.skipped[0] if outputs.skipped else ("?", "?")
        raise DataError(f"none of the {len(samples)} calibration image(s) could be read (first: {path}: {reason}). "
                        f"Fix: point --data at readable normal images")
    classes = {name: fit_thresholds(np.asarray(outputs.scores[name]), np.stack(outputs.maps[name]), rate)
               for name in outputs.scores}
    classes[ALL] = fit_thresholds(np.concatenate([np.asarray(outputs.scores[n]) for n in outputs.scores]),
                                  np.concatenate([np.stack(outputs.maps[n]) for n in outputs.maps]), rate)
    calibration = Calibration(rate, classes, source or f"{len(samples)} normal images")
    note = calibration.too_few_note()
    if note:
        warnings.warn(note, stacklevel=3)
    return calibration
