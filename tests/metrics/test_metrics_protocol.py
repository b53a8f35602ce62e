"""Protocol: per-class metrics, means, degenerate classes, Results JSON round-trip and the text table."""

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from nipad.errors import DataError
from nipad.metrics import (
    METRIC_NAMES,
    ClassInputs,
    Results,
    aupro,
    evaluate,
    evaluate_class,
    f1_max,
    format_table,
)


def class_inputs(seed: int, n_normal: int = 4, n_anomalous: int = 4, size: int = 24) -> ClassInputs:
    rng = np.random.default_rng(seed)
    n = n_normal + n_anomalous
    labels = np.array([0] * n_normal + [1] * n_anomalous)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n_normal, n):
        y, x = rng.integers(0, size - 6, size=2)
        masks[i, y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = True
    maps = (rng.normal(size=masks.shape) + 1.5 * masks).astype(np.float32)
    scores = maps.reshape(n, -1).max(axis=1) + rng.normal(scale=0.5, size=n)
    return ClassInputs(image_scores=scores, image_labels=labels, anomaly_maps=maps, masks=masks)


def test_evaluate_class_matches_standalone_metrics() -> None:
    ci = class_inputs(0)
    values = evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps, ci.masks)
    assert tuple(values) == METRIC_NAMES
    assert values["image_auroc"] == pytest.approx(roc_auc_score(ci.image_labels, ci.image_scores))
    assert values["image_ap"] == pytest.approx(average_precision_score(ci.image_labels, ci.image_scores))
    pixels, truth = ci.anomaly_maps.ravel(), ci.masks.ravel()
    assert values["pixel_auroc"] == pytest.approx(roc_auc_score(truth, pixels))
    assert values["pixel_ap"] == pytest.approx(average_precision_score(truth, pixels))
    assert values["pixel_f1max"] == pytest.approx(f1_max(pixels, truth))
    assert values["pixel_aupro"] == pytest.approx(aupro(ci.anomaly_maps, ci.masks))
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in values.values())


def test_only_normal_images_gives_none() -> None:
    ci = class_inputs(1, n_normal=5, n_anomalous=0)
    values = evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps, ci.masks)
    assert values == dict.fromkeys(METRIC_NAMES)


def test_anomalous_images_without_anomalous_pixels() -> None:
    ci = class_inputs(2)
    values = evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps, np.zeros_like(ci.masks))
    assert values["image_auroc"] is not None
    assert all(values[m] is None for m in ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro"))


def test_no_masks_gives_no_pixel_metrics() -> None:
    ci = class_inputs(3)
    values = evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps, None)
    assert values["image_f1max"] is not None
    assert all(values[m] is None for m in ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro"))


def test_constant_scores_and_one_pixel_anomaly() -> None:
    ci = class_inputs(4, n_normal=3, n_anomalous=1)
    masks = np.zeros_like(ci.masks)
    masks[3, 5, 5] = True
    flat = np.zeros_like(ci.anomaly_maps)
    values = evaluate_class(np.ones(4), ci.image_labels, flat, masks)
    assert values["image_auroc"] == 0.5
    assert values["pixel_auroc"] == 0.5
    assert values["pixel_aupro"] == pytest.approx(0.15)
    spot = flat.copy()
    spot[3, 5, 5] = 1.0
    values = evaluate_class(ci.image_scores, ci.image_labels, spot, masks)
    assert values["pixel_auroc"] == values["pixel_ap"] == values["pixel_f1max"] == values["pixel_aupro"] == 1.0


@pytest.mark.parametrize("field", ["image_scores", "anomaly_maps"])
def test_non_finite_inputs_raise(field: str) -> None:
    ci = class_inputs(5)
    arrays = {"image_scores": ci.image_scores.copy(), "anomaly_maps": ci.anomaly_maps.copy()}
    arrays[field].reshape(-1)[2] = np.nan
    with pytest.raises(DataError, match=f"{field.replace('_', ' ')} of class 'bottle' contain 1 NaN/inf"):
        evaluate_class(arrays["image_scores"], ci.image_labels, arrays["anomaly_maps"], ci.masks, "bottle")


def test_shape_mismatch_raises() -> None:
    ci = class_inputs(6)
    with pytest.raises(DataError, match="resize the maps"):
        evaluate_class(ci.image_scores, ci.image_labels, ci.anomaly_maps[:, :12], ci.masks)
    with pytest.raises(DataError, match="one score per image label"):
        evaluate_class(ci.image_scores[:3], ci.image_labels, ci.anomaly_maps, ci.masks)


def test_evaluate_means_counts_and_json_round_trip(tmp_path) -> None:
    inputs = {"a": class_inputs(7), "b": class_inputs(8, n_normal=6, n_anomalous=2), "c": class_inputs(9, 3, 0)}
    results = evaluate(inputs, image_size=(256, 256), meta={"model": "onenip"})
    assert results.eval_resolution == (24, 24)
    assert results.image_size == (256, 256)
    assert results.n_images == {
        "a": {"normal": 4, "anomalous": 4},
        "b": {"normal": 6, "anomalous": 2},
        "c": {"normal": 3, "anomalous": 0},
    }
    for name in METRIC_NAMES:
        defined = [results.per_class[c][name] for c in ("a", "b")]
        assert results.mean[name] == pytest.approx(np.mean(defined))
        assert results.per_class["c"][name] is None
    path = tmp_path / "results.json"
    results.to_json(path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    raw = json.loads(path.read_text())
    assert set(raw) == {"per_class", "mean", "image_size", "eval_resolution", "n_images", "meta", "operating_point"}
    assert list(raw["per_class"]["a"]) == list(METRIC_NAMES)
    assert raw["per_class"]["c"]["pixel_aupro"] is None
    assert Results.from_json(path) == results
    del raw["operating_point"]  # results written before it existed still read
    assert Results.from_dict(raw) == results
    point = {"a": {"image_threshold": 0.5, "defects_caught": 3, "precision": None}}
    with_point = replace(results, operating_point=point)
    with_point.to_json(path)
    assert Results.from_json(path).operating_point == point
    with pytest.raises(DataError, match="operating_point"):
        replace(results, operating_point={"z": {}})


def test_results_reject_bad_values(tmp_path) -> None:
    values = dict.fromkeys(METRIC_NAMES, 0.5)
    with pytest.raises(DataError, match=r"image_auroc = 1.5"):
        Results({"a": values | {"image_auroc": 1.5}}, values, (8, 8), (8, 8), {"a": {"normal": 1, "anomalous": 1}})
    with pytest.raises(DataError, match="metric keys"):
        Results({"a": {"auroc": 0.5}}, values, (8, 8), (8, 8), {"a": {"normal": 1, "anomalous": 1}})
    path = tmp_path / "broken.json"
    path.write_text('{"per_class": {}}')
    with pytest.raises(DataError, match="broken.json"):
        Results.from_json(path)


def test_mixed_mask_resolutions_raise() -> None:
    with pytest.raises(DataError, match="different resolutions"):
        evaluate({"a": class_inputs(10, size=24), "b": class_inputs(11, size=16)})


def test_format_table() -> None:
    results = evaluate({"screw": class_inputs(12), "empty": class_inputs(13, 3, 0)})
    table = format_table(results)
    lines = table.splitlines()
    assert all(name in lines[0] for name in METRIC_NAMES)
    assert lines[2].startswith("screw") and f"{100 * results.per_class['screw']['pixel_aupro']:.1f}" in lines[2]
    assert lines[3].startswith("empty") and lines[3].split()[1:] == ["-"] * 7
    assert lines[5].startswith("mean")
    assert "24x24" in lines[-1]
