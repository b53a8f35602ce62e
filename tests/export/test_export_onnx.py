"""ONNX export: onnxruntime agrees with PyTorch (maps within 1e-4), dynamic batch and image size, the prompt index
names the class through the sidecar, the in-graph resize is PIL's, and bad use gets a clear error."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nipad.cli.main import main
from nipad.data import decode_image_bytes
from nipad.engine.calibration import Calibration
from nipad.errors import ConfigError
from nipad.export.graph import InferenceGraph, resize_images
from nipad.export.onnx_export import GRAPHS, export_onnx
from nipad.export.onnx_runner import OnnxDetector
from nipad.models.names import MODELS
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.matching import prompt_tokens
from nipad.models.onenip.model_config import preset
from nipad.runs.checkpoint import load_detector

from both_ways import predictions_both_ways

MAP_TOL = 1e-4


@pytest.fixture(scope="module")
def onenip_export(untrained_onenip_run, tmp_path_factory):
    """(run dir, exported .onnx, the run's detector loaded in PyTorch)."""
    run = untrained_onenip_run
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    return run, out, load_detector(run)[0]


def _images(batch, height, width, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (batch, 3, height, width), dtype=np.uint8))


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch_detector(onenip_export, batch):
    _, path, detector = onenip_export
    onnx = OnnxDetector(path)
    images = _images(batch, 64, 64, seed=batch)
    ref = detector(images)
    got = onnx(images.numpy())
    assert got["anomaly_map"].shape == (batch, 1, 64, 64)
    assert np.abs(got["anomaly_map"] - ref["anomaly_map"].numpy()).max() < MAP_TOL
    assert np.abs(got["pred_score"] - ref["pred_score"].numpy()).max() < MAP_TOL
    assert got["prompt_class"] == ref["prompt_class"]


def test_prompt_index_names_the_nearest_class(onenip_export, tiny_mvtec):
    path = onenip_export[1]
    onnx = OnnxDetector(path)
    assert onnx.prompt_classes == ["dots", "stripes"]
    for name in ("dots", "stripes"):
        image = decode_image_bytes((tiny_mvtec / name / "test/good/000.png").read_bytes(), 64)
        out = onnx(np.ascontiguousarray(image.transpose(2, 0, 1))[None])
        assert out["prompt_class"] == [name]
        assert onnx.prompt_classes[int(out["prompt_index"][0])] == name


def test_any_input_size_is_resized_inside_the_graph(onenip_export):
    _, path, detector = onenip_export
    graph = InferenceGraph(detector)
    images = _images(3, 100, 72)
    ref_score, ref_map, ref_index = graph(images)
    got = OnnxDetector(path)(images)  # a torch tensor in -> torch tensors out, as Detector
    assert isinstance(got["anomaly_map"], torch.Tensor)
    assert (got["anomaly_map"] - ref_map).abs().max() < MAP_TOL
    assert (got["pred_score"] - ref_score).abs().max() < MAP_TOL
    assert torch.equal(got["prompt_index"], ref_index)


@pytest.mark.parametrize("shape", [(100, 80), (37, 150), (64, 64), (20, 30)])
def test_resize_is_pil_bilinear(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    pil = decode_image_bytes(buf.getvalue(), 64).astype(np.float32)
    ours = resize_images(torch.from_numpy(image).permute(2, 0, 1)[None], 64)[0].permute(1, 2, 0).numpy()
    torch_aa = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(64, 64),
                             mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - torch_aa).max() < 1e-3
    assert np.abs(ours - pil).max() <= 1.0  # PIL rounds to whole grey levels


def test_sidecar_holds_classes_calibration_and_the_check(onenip_export):
    run, path, _ = onenip_export
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["image_size"] == 64 and meta["input"]["layout"] == "NCHW" and meta["input"]["dtype"] == "uint8"
    assert meta["check"]["max_map_diff"] < MAP_TOL and meta["check"]["same_prompts"]
    assert OnnxDetector(path).calibration == Calibration.load(run)


def test_uniad_export_names_classes_without_prompts_in_the_decoder(onenip_export, tmp_path):
    onenip = onenip_export[2]
    torch.manual_seed(0)
    detector = Detector(preset("cpu", "uniad", image_size=64), extractor=onenip.extractor).eval()
    detector.prompts.load(onenip.prompts.class_names, onenip.prompts.features, onenip.prompts.owners)
    report = export_onnx(detector, tmp_path / "uniad.onnx")
    assert OnnxDetector(report.onnx_path).calibration is None  # no run dir given
    images = _images(2, 64, 64)
    got, ref = OnnxDetector(report.onnx_path)(images.numpy()), detector(images)
    assert np.abs(got["anomaly_map"] - ref["anomaly_map"].numpy()).max() < MAP_TOL
    assert got["prompt_class"] == ref["prompt_class"]


def test_bad_use_is_a_clear_error(onenip_export, tmp_path, capsys):
    run, path, _ = onenip_export
    assert main(["export", str(run), "--out", str(tmp_path / "model.bin")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="OneNIP and UniAD"):
        export_onnx(torch.nn.Identity(), tmp_path / "m.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(ConfigError, match="lone.json is missing"):
        OnnxDetector(lone)
    with pytest.raises(ConfigError, match="expected uint8 RGB images"):
        OnnxDetector(path)(np.zeros((1, 3, 64, 64), np.float32))


def test_every_model_but_anomalysd_has_a_graph():
    assert sorted(GRAPHS) == sorted(set(MODELS) - {"anomalysd"})


def test_a_damaged_export_is_refused(onenip_export, tmp_path):
    _, path, _ = onenip_export
    copy = tmp_path / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # a weight's bits: onnxruntime would load it and compute wrong scores
    copy.write_bytes(bytes(data))
    (tmp_path / "model.json").write_bytes(path.with_suffix(".json").read_bytes())
    with pytest.raises(ConfigError, match="model.onnx is corrupt"):
        OnnxDetector(copy)


def test_an_edited_threshold_in_the_sidecar_is_refused(onenip_export, tiny_mvtec, tmp_path, capsys):
    _, path, _ = onenip_export
    copy = tmp_path / "model.onnx"
    copy.write_bytes(path.read_bytes())
    meta = json.loads(path.with_suffix(".json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(meta))  # the same values, written otherwise: still loads
    assert OnnxDetector(copy).calibration is not None
    for thresholds in meta["calibration"]["classes"].values():
        thresholds["image_threshold"] *= 2
    (tmp_path / "model.json").write_text(json.dumps(meta, indent=2))
    with pytest.raises(ConfigError, match="model.json was changed after export"):
        OnnxDetector(copy)
    image = str(tiny_mvtec / "stripes/test/good/000.png")
    assert main(["predict", "--onnx", str(copy), image, "--out", str(tmp_path / "p")]) == 2
    assert "was changed after export" in capsys.readouterr().err


def test_predict_with_onnx_matches_predict_with_the_run(onenip_export, tiny_mvtec, tmp_path):
    run, path, _ = onenip_export
    images = [str(tiny_mvtec / "dots/test"), str(tiny_mvtec / "stripes/test/blob")]
    rows = predictions_both_ways(run, path, images, tmp_path)
    assert len(rows[0]) == len(rows[1]) == 11
    for ref, got in zip(*rows, strict=True):
        assert got["path"] == ref["path"] and got["class"] == ref["class"] and got["pred_label"] == ref["pred_label"]
        assert abs(got["pred_score"] - ref["pred_score"]) < MAP_TOL


def test_the_runner_needs_no_pytorch_model_code(onenip_export):
    code = ("import sys, numpy as np; from nipad.export.onnx_runner import OnnxDetector; "
            f"out = OnnxDetector({str(onenip_export[1])!r})(np.zeros((1, 3, 50, 70), np.uint8)); "
            "assert out['anomaly_map'].shape == (1, 1, 64, 64); "
            "assert not [m for m in sys.modules if m.startswith(('nipad.models', 'timm'))], 'model code imported'")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_nipad_preset_exports_with_its_matching_map_and_validated_fusion(onenip_export, tmp_path):
    onenip = onenip_export[2]
    torch.manual_seed(0)
    detector = Detector(preset("nipad", "onenip", image_size=64), extractor=onenip.extractor).eval()
    detector.prompts.load(onenip.prompts.class_names, onenip.prompts.features, onenip.prompts.owners)
    bank, owners = prompt_tokens(onenip.prompts.features[:1], onenip.prompts.owners[:1])
    detector.bank.load(bank[::3] + 0.01, owners[::3])  # the first class matched against a bank, the others' prompts
    detector.score_weights.copy_(torch.tensor([0.0, 0.0, 1.0]))
    detector.map_weights.copy_(torch.tensor([0.25, 0.25, 0.5]))
    detector.map_shift.copy_(torch.tensor([1.0, 0.1, 2.0]))
    detector.map_scale.copy_(torch.tensor([3.0, 0.5, 4.0]))
    report = export_onnx(detector, tmp_path / "nipad.onnx")
    images = _images(3, 64, 64, seed=5)
    got, ref = OnnxDetector(report.onnx_path)(images.numpy()), detector(images)
    assert ref["match_map"] is not None and float(ref["match_map"].max()) > 0
    assert np.abs(got["anomaly_map"] - ref["anomaly_map"].numpy()).max() < MAP_TOL
    assert np.abs(got["pred_score"] - ref["pred_score"].numpy()).max() < MAP_TOL
    assert got["prompt_class"] == ref["prompt_class"]


def test_predict_with_onnx_takes_a_threshold_by_hand(onenip_export, tiny_mvtec, tmp_path, capsys):
    _, path, _ = onenip_export
    images = str(tiny_mvtec / "dots/test")

    def labels(*extra):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        assert main(["predict", "--onnx", str(path), images, "--out", str(out), *extra]) == 0
        return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]

    scores = [r["pred_score"] for r in labels()]
    assert not any(r["pred_label"] for r in labels("--threshold", str(max(scores) + 1)))
    assert all(r["pred_label"] for r in labels(f"--threshold={min(scores) - 1}"))
    calibration = OnnxDetector(path, thresholds=["dots=0.25", "1.5"]).calibration
    assert calibration.for_class("dots").image_threshold == 0.25
    assert calibration.for_class("stripes").image_threshold == 1.5 and calibration.for_class(None).method == "manual"
    with pytest.raises(ConfigError, match=r"no class 'bottle' \(its classes: dots, stripes\)"):
        OnnxDetector(path, thresholds=["bottle=1"])
    assert main(["predict", "--onnx", str(path), images, "--out", str(tmp_path / "x"), "--threshold", "nan"]) == 2
    assert "'nan' is not a finite number" in capsys.readouterr().err
