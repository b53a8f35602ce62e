"""ONNX export of PatchCore, PaDiM and kNN runs: onnxruntime agrees with the PyTorch model on square and non-square
images, the sidecar names the classes and holds the check, `nipad predict --onnx` gives the run's labels, and
AnomalySD runs are refused with the reason."""

import json

import numpy as np
import pytest
import torch

from nipad.cli.main import main
from nipad.engine.calibration import Calibration
from nipad.errors import ConfigError
from nipad.export import baseline_graph as graphs
from nipad.export.onnx_export import export_onnx, inference_graph
from nipad.export.onnx_runner import OnnxDetector
from nipad.families import load_run
from nipad.models.anomalysd.inference import AnomalySD
from nipad.models.baselines.template import smooth_map

from both_ways import predictions_both_ways

MAP_TOL = 1e-4  # tests/export/test_export_onnx.py's
RUNS = {"patchcore": "separate", "padim": "separate", "knn": "unified"}

pytestmark = pytest.mark.usefixtures("one_thread")


def tolerance(model: str, reference: np.ndarray) -> float:
    """MAP_TOL; PaDiM fitted on 4 images per class scores ~1e3 (covariances mostly the 0.01 regulariser), where
    float32 features that agree to ~1e-6 between runtimes give ~5e-4: there, 2e-6 of the largest value."""
    return MAP_TOL if model != "padim" else max(MAP_TOL, 2e-6 * float(np.abs(reference).max()))


@pytest.fixture(scope="module")
def exports(tiny_mvtec, tmp_path_factory):
    """{model: (run dir, exported .onnx, the run's model loaded in PyTorch)}, 5-shot 64 px runs."""
    root = tmp_path_factory.mktemp("baseline-exports")
    out = {}
    for model, mode in RUNS.items():
        run, path = root / model, root / f"{model}.onnx"
        assert main(["train", "--data", str(tiny_mvtec), "--model", model, "--mode", mode, "--out", str(run),
                     "--image-size", "64", "--shots", "5"]) == 0
        assert main(["export", str(run), "--out", str(path)]) == 0
        out[model] = run, path, load_run(run)[0]
    return out


def _images(batch, height, width, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (batch, 3, height, width), dtype=np.uint8))


def _test_images(root):
    from nipad.data import load_image

    paths = [root / c / "test" / sub / "000.png" for c in ("dots", "stripes") for sub in ("good", "blob")]
    return torch.from_numpy(np.stack([load_image(p, 64) for p in paths]).transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("model", RUNS)
def test_onnxruntime_matches_the_pytorch_model(exports, tiny_mvtec, model):
    _, path, torch_model = exports[model]
    images = torch.cat([_test_images(tiny_mvtec), _images(2, 64, 64, seed=3)])
    ref, got = torch_model(images), OnnxDetector(path)(images.numpy())
    assert got["anomaly_map"].shape == (len(images), 1, 64, 64)
    ref_score, ref_map = ref["pred_score"].numpy(), ref["anomaly_map"].numpy()
    assert np.abs(got["pred_score"] - ref_score).max() < tolerance(model, ref_score)
    assert np.abs(got["anomaly_map"] - ref_map).max() < tolerance(model, ref_map)
    assert got["prompt_class"] == ref["prompt_class"]
    assert ref["prompt_class"][:4] == ["dots", "dots", "stripes", "stripes"]


@pytest.mark.parametrize("model", RUNS)
@pytest.mark.parametrize("shape", [(100, 72), (37, 150)])
def test_any_input_size_is_resized_inside_the_graph(exports, model, shape):
    _, path, torch_model = exports[model]
    images = _images(2, *shape, seed=shape[0])
    ref_score, ref_map, ref_index = inference_graph(torch_model)(images)
    got = OnnxDetector(path)(images)
    assert (got["pred_score"] - ref_score).abs().max() < tolerance(model, ref_score.numpy())
    assert (got["anomaly_map"] - ref_map).abs().max() < tolerance(model, ref_map.numpy())
    assert torch.equal(got["prompt_index"], ref_index)


@pytest.mark.parametrize("model", RUNS)
def test_sidecar_names_the_classes_and_holds_the_check(exports, model):
    run, path, _ = exports[model]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["model"] == model and meta["image_size"] == 64 and meta["prompt_classes"] == ["dots", "stripes"]
    check = meta["check"]
    assert check["max_score_diff"] < tolerance(model, np.array(check["max_score"])) and check["same_prompts"]
    assert OnnxDetector(path).calibration == Calibration.load(run)


@pytest.mark.parametrize("model", RUNS)
def test_predict_with_onnx_gives_the_labels_of_predict_with_the_run(exports, tiny_mvtec, tmp_path, model):
    run, path, _ = exports[model]
    images = [str(tiny_mvtec / "dots/test"), str(tiny_mvtec / "stripes/test")]
    rows = predictions_both_ways(run, path, images, tmp_path)
    assert len(rows[0]) == len(rows[1]) == 14
    for ref, got in zip(*rows, strict=True):
        assert got["path"] == ref["path"] and got["class"] == ref["class"] and got["pred_label"] == ref["pred_label"]
        assert abs(got["pred_score"] - ref["pred_score"]) < tolerance(model, np.array(ref["pred_score"]))


def test_the_graph_blur_is_smooth_map():
    patches = torch.rand(2, 1, 8, 8) * 50
    for sigma in (4.0, 1.5, 0.0):
        assert torch.allclose(graphs.Smoothing(64, sigma)(patches), smooth_map(patches, 64, sigma), atol=1e-5)


def test_a_state_over_one_onnx_file_is_refused(exports, monkeypatch):
    monkeypatch.setattr(graphs, "MAX_BYTES", 1000)
    with pytest.raises(ConfigError, match=r"exceeds the 2 GiB of one ONNX file. Fix: .* or fewer --padim-dims"):
        graphs.baseline_graph(exports["padim"][2])


def test_anomalysd_is_refused_with_the_reason(tmp_path, capsys):
    with pytest.raises(ConfigError, match="iterative diffusion sampler .* Fix: run it with `nipad predict"):
        export_onnx(AnomalySD.__new__(AnomalySD), tmp_path / "m.onnx")  # the type is all the check reads
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"family": "anomalysd", "finished": True}))
    assert main(["export", str(run), "--out", str(tmp_path / "sd.onnx")]) == 2  # before any weight is read
    err = capsys.readouterr().err
    assert "AnomalySD runs cannot be exported to ONNX" in err and "multi-GB" in err
    assert not (tmp_path / "sd.onnx").exists()
