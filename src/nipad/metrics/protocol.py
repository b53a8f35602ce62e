"""The field's evaluation protocol: seven image and pixel metrics per class, their unweighted mean, and the
Results record (JSON round-trip, plain-text table). Pixel metrics use every pixel of every test image of the class
(normal images included) at the masks' resolution, with one sort of the class's pixels for all four of them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from nipad.errors import DataError
from nipad.metrics.aupro import aupro_from_ranking
from nipad.metrics.curves import (
    as_binary,
    auroc_from_counts,
    average_precision_from_counts,
    check_finite,
    curve_counts,
    f1_max_from_counts,
    rank,
)
from nipad.utils.io import atomic_write_text

IMAGE_METRICS = ("image_auroc", "image_ap", "image_f1max")
PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
METRIC_NAMES = IMAGE_METRICS + PIXEL_METRICS
AUPRO_FPR_LIMIT = 0.3

MetricValues = dict[str, float | None]


@dataclass(frozen=True)
class ClassInputs:
    """One class's test set: image scores and labels (N,), and optionally anomaly maps and bool masks (N, H, W).
    Without masks (image-label-only data sets) the pixel metrics are None."""

    image_scores: np.ndarray
    image_labels: np.ndarray
    anomaly_maps: np.ndarray | None = None
    masks: np.ndarray | None = None


def _pixel_metrics(maps: np.ndarray, masks: np.ndarray, class_name: str) -> MetricValues:
    """Pixel AUROC, AP, F1-max and AUPRO from a single ranking of all the class's pixels."""
    check_finite(maps, f"anomaly maps of class '{class_name}'")
    ranking = rank(maps)
    counts = curve_counts(ranking, masks)
    return {
        "pixel_auroc": auroc_from_counts(counts),
        "pixel_ap": average_precision_from_counts(counts),
        "pixel_f1max": f1_max_from_counts(counts),
        "pixel_aupro": aupro_from_ranking(ranking, masks, AUPRO_FPR_LIMIT, counts),
    }


def evaluate_class(
    image_scores: np.ndarray,
    image_labels: np.ndarray,
    anomaly_maps: np.ndarray | None,
    masks: np.ndarray | None,
    class_name: str = "?",
) -> MetricValues:
    """All seven metrics of one class (keys METRIC_NAMES); None where a metric is undefined for the data."""
    scores = np.asarray(image_scores).reshape(-1)
    labels = as_binary(np.asarray(image_labels).reshape(-1), f"image labels of class '{class_name}'")
    if scores.size == 0 or scores.shape != labels.shape:
        raise DataError(
            f"class '{class_name}': need one score per image label; got {scores.size} scores, {labels.size} labels."
        )
    check_finite(scores, f"image scores of class '{class_name}'")
    image_counts = curve_counts(rank(scores), labels)
    values: MetricValues = {
        "image_auroc": auroc_from_counts(image_counts),
        "image_ap": average_precision_from_counts(image_counts),
        "image_f1max": f1_max_from_counts(image_counts),
    }
    if anomaly_maps is None or masks is None:
        return values | dict.fromkeys(PIXEL_METRICS)
    maps = np.asarray(anomaly_maps)
    masks = as_binary(masks, f"masks of class '{class_name}'")
    if maps.ndim != 3 or maps.shape != masks.shape or maps.shape[0] != scores.size:
        raise DataError(
            f"class '{class_name}': anomaly maps {maps.shape} and masks {masks.shape} must both be "
            f"({scores.size}, H, W); resize the maps to the masks' resolution."
        )
    return values | _pixel_metrics(maps, masks, class_name)


def _check_values(values: Mapping[str, Any], where: str) -> MetricValues:
    if set(values) != set(METRIC_NAMES):
        raise DataError(f"{where}: metric keys must be exactly {list(METRIC_NAMES)}; got {sorted(values)}.")
    for name, value in values.items():
        if value is not None and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise DataError(f"{where}: {name} = {value!r} is not a fraction in [0, 1] or null.")
    return {name: None if values[name] is None else float(values[name]) for name in METRIC_NAMES}


def mean_over_classes(per_class: Mapping[str, MetricValues]) -> MetricValues:
    """Unweighted mean of each metric over the classes where it is defined; None where no class defines it."""
    means: MetricValues = {}
    for name in METRIC_NAMES:
        defined = [value for v in per_class.values() if (value := v[name]) is not None]
        means[name] = math.fsum(defined) / len(defined) if defined else None
    return means


@dataclass(frozen=True)
class Results:
    """Metrics (fractions in [0, 1], None = undefined) per class and their mean, with the resolutions they hold at:
    `image_size` is the model input (H, W), `eval_resolution` the masks' (H, W) the pixel metrics were computed at
    (None when no class has masks). `operating_point`: per class, the image threshold applied and what it does
    on the test images (nipad.engine.evaluate.operating_point); empty when no threshold was known."""

    per_class: dict[str, MetricValues]
    mean: MetricValues
    image_size: tuple[int, int] | None
    eval_resolution: tuple[int, int] | None
    n_images: dict[str, dict[str, int]]
    meta: dict[str, Any] = field(default_factory=dict)
    operating_point: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values in self.per_class.items():
            _check_values(values, f"results of class '{name}'")
        _check_values(self.mean, "mean results")
        if set(self.n_images) != set(self.per_class):
            raise DataError("results: n_images must list the same classes as per_class.")
        if not set(self.operating_point) <= set(self.per_class):
            raise DataError("results: operating_point lists classes that per_class does not.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (None stays None, tuples become lists)."""
        return {
            "per_class": {name: dict(values) for name, values in self.per_class.items()},
            "mean": dict(self.mean),
            "image_size": None if self.image_size is None else list(self.image_size),
            "eval_resolution": None if self.eval_resolution is None else list(self.eval_resolution),
            "n_images": {name: dict(counts) for name, counts in self.n_images.items()},
            "meta": dict(self.meta),
            "operating_point": {name: dict(point) for name, point in self.operating_point.items()},
        }

    def to_json(self, path: str | Path) -> None:
        """Write atomically (temp file in the same folder, then os.replace) so a reader never sees half a file."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "results") -> Results:
        """Inverse of to_dict; DataError when a field is missing or malformed."""
        try:
            return cls(
                per_class={name: _check_values(v, f"{where}, class '{name}'") for name, v in data["per_class"].items()},
                mean=_check_values(data["mean"], f"{where}, mean"),
                image_size=None if data["image_size"] is None else tuple(data["image_size"]),
                eval_resolution=None if data["eval_resolution"] is None else tuple(data["eval_resolution"]),
                n_images={name: {k: int(n) for k, n in c.items()} for name, c in data["n_images"].items()},
                meta=dict(data.get("meta", {})),
                operating_point={name: dict(p) for name, p in data.get("operating_point", {}).items()},
            )
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise DataError(f"{where} is not a nipad results record ({err!r}); re-run the evaluation.") from err

    @classmethod
    def from_json(cls, path: str | Path) -> Results:
        """Read a file written by to_json."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read results file {path}: {err}") from err
        return cls.from_dict(data, where=str(path))


def _resolution(per_class_inputs: Mapping[str, ClassInputs]) -> tuple[int, int] | None:
    sizes = {tuple(ci.masks.shape[1:]) for ci in per_class_inputs.values() if ci.masks is not None}
    if len(sizes) > 1:
        raise DataError(f"masks of different classes have different resolutions {sorted(sizes)}; resize them to one.")
    return sizes.pop() if sizes else None


def evaluate(
    per_class_inputs: Mapping[str, ClassInputs],
    image_size: tuple[int, int] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Results:
    """Run the protocol on every class. `image_size` is the model input (H, W); it defaults to the masks'
    resolution, which is where the pixel metrics are computed."""
    if not per_class_inputs:
        raise DataError("no classes to evaluate.")
    eval_resolution = _resolution(per_class_inputs)
    per_class: dict[str, MetricValues] = {}
    n_images: dict[str, dict[str, int]] = {}
    for name, ci in per_class_inputs.items():
        per_class[name] = evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps, ci.masks, class_name=name)
        n_anomalous = int(np.count_nonzero(ci.image_labels))
        n_images[name] = {"normal": int(np.size(ci.image_labels)) - n_anomalous, "anomalous": n_anomalous}
    return Results(
        per_class=per_class,
        mean=mean_over_classes(per_class),
        image_size=cast("tuple[int, int]", tuple(image_size)) if image_size is not None else eval_resolution,
        eval_resolution=eval_resolution,
        n_images=n_images,
        meta=dict(meta or {}),
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_table(results: Results) -> str:
    """Plain-text table: one row per class plus the mean row, the seven metrics in %, then the resolution line."""
    header = ["class", *METRIC_NAMES]
    rows = [[name, *(_percent(v[m]) for m in METRIC_NAMES)] for name, v in results.per_class.items()]
    rows.append(["mean", *(_percent(results.mean[m]) for m in METRIC_NAMES)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    body = [line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])]
    if results.eval_resolution is None:
        body.append("Pixel metrics: none (no ground-truth masks).")
    else:
        h, w = results.eval_resolution
        size = "" if results.image_size is None else f"; model input {results.image_size[0]}x{results.image_size[1]}"
        body.append(f"Pixel metrics at the masks' evaluation resolution {h}x{w}{size}. Values in %, '-' = undefined.")
    return "\n".join(body)
