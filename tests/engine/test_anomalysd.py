"""`nipad train --model anomalysd` end to end on the tiny SD model and the tiny 2-class set: the run directory,
loading it back, class matching, the UNet-evaluation count, `nipad test` / `predict`, the 0-shot run, errors,
resuming an interrupted fine-tuning, the choice of perceptual distance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nipad.cli.main import main
from nipad.data import load_image, open_dataset
from nipad.engine.calibration import Calibration
from nipad.errors import CheckpointError
from nipad.families import load_run
from nipad.models.anomalysd.config import AnomalySDConfig
from nipad.models.anomalysd.inference import unet_evaluations
from nipad.models.anomalysd.pipeline import load_sd
from nipad.models.lpips.lpips_net import LPIPS
from nipad.runs import integrity

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--image-size", "64", "--sd-steps", "4", "--sd-scales", "1,2", "--sd-lambda", "0.5", "--seed", "0"]


def train(data: Path, sd: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--model", "anomalysd", "--sd-model", str(sd), "--out", str(out),
                 *FAST, *extra])


@pytest.fixture(scope="module")
def small_data(tiny_mvtec, tmp_path_factory) -> Path:
    """tiny_mvtec with 3 training, 1 normal and 2 anomalous test images per class (inference is the slow part)."""
    root = tmp_path_factory.mktemp("small_mvtec")
    for kind in ("stripes", "dots"):
        for sub, n in (("train/good", 3), ("test/good", 1), ("test/blob", 2), ("ground_truth/blob", 2)):
            (root / kind / sub).mkdir(parents=True)
            for path in sorted((tiny_mvtec / kind / sub).iterdir())[:n]:
                shutil.copy(path, root / kind / sub / path.name)
    return root


@pytest.fixture(scope="module")
def run_dir(small_data, tiny_sd, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("anomalysd") / "run"
    assert train(small_data, tiny_sd, out, "--shots", "2", "--epochs", "2", "--batch-size", "4",
                 "--sd-decoder-epochs", "1", "--sd-lambda", "dots=0.75") == 0
    return out


def images_of(data: Path, label: int) -> tuple[torch.Tensor, list[str]]:
    samples = [s for s in open_dataset(data).test if s.label == label]
    images = torch.stack([torch.from_numpy(load_image(s.image_path, 64)).permute(2, 0, 1) for s in samples])
    return images, [s.class_name for s in samples]


def test_the_run_directory_holds_settings_fine_tuned_weights_and_shot_thresholds(run_dir, tiny_sd):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["family"] == "anomalysd" and config["finished"]
    assert config["model"]["sd_model"] == str(tiny_sd.resolve()) and config["model"]["shots"] == 2
    assert config["model"]["class_strength"] == {"dots": 0.75} and config["model"]["scales"] == [1, 2]
    assert config["classes"] == ["dots", "stripes"] and config["prompts"]["dots"] == ["A perfect dots."]
    assert [h["stage"] for h in config["history"]] == ["unet", "unet", "decoder"]
    tensors = load_file(str(run_dir / "model.safetensors"))
    assert {k.split(".")[0] for k in tensors} == {"unet", "vae", "shots"}
    assert all(k.startswith(("vae.decoder.", "vae.post_quant_conv.")) for k in tensors if k.startswith("vae."))
    assert tensors["shots.images"].shape == (4, 3, 64, 64) and tensors["shots.owners"].tolist() == [0, 0, 1, 1]
    pretrained = load_sd(tiny_sd).unet.state_dict()
    assert any(not torch.equal(tensors[f"unet.{k}"], v) for k, v in pretrained.items())  # fine-tuned
    calibration = Calibration.load(run_dir)
    assert "shots themselves" in calibration.source and calibration.classes["dots"].n_images == 2


def test_the_loaded_model_finds_the_class_and_counts_its_unet_evaluations(run_dir, small_data):
    model, info = load_run(run_dir)
    saved = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(saved[f"unet.{k}"], v) for k, v in model.net.state_dict().items())
    assert info.classes == ["dots", "stripes"] and model.config.image_size == 64
    images, classes = images_of(small_data, 1)
    calls = []
    hook = model.net.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    out = model(images)
    hook.remove()
    assert out["prompt_class"] == classes  # the class comes from the shots' pool, not from the caller
    steps = {"dots": 3, "stripes": 2}  # lambda 0.75 and 0.5 of 4 steps
    assert sum(calls) == sum(unet_evaluations((1, 2), 4, 0.75 if c == "dots" else 0.5) for c in classes)
    assert sum(calls) == sum((1 + 4 + 1) * steps[c] for c in classes)
    assert max(calls) <= model.config.mask_batch
    n = len(images)
    assert out["anomaly_map"].shape == (n, 1, 64, 64) and out["pred_score"].shape == (n,)
    assert out["rec_map"].shape == out["ref_map"].shape == (n, 1, 64, 64)
    assert torch.equal(out["pred_score"], out["anomaly_map"].flatten(1).max(dim=1).values)
    assert torch.isfinite(out["anomaly_map"]).all() and (out["anomaly_map"] >= 0).all()
    assert torch.equal(model(images[:1])["anomaly_map"], out["anomaly_map"][:1])  # seeded noise: repeatable


def test_nipad_test_and_predict_take_the_run(run_dir, small_data, tmp_path, capsys):
    assert main(["test", str(run_dir), "--data", str(small_data), "--json", str(tmp_path / "m.json")]) == 0
    results = json.loads((tmp_path / "m.json").read_text())
    assert results["n_images"] == {c: {"normal": 1, "anomalous": 2} for c in ("dots", "stripes")}  # none skipped
    assert all(v["pixel_auroc"] is not None for v in results["per_class"].values())  # the masks were used
    image = min((small_data / "stripes" / "test" / "blob").iterdir())
    assert main(["predict", str(run_dir), str(image), "--out", str(tmp_path / "pred")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["class"] == "stripes"


def test_zero_shot_runs_the_pretrained_model(small_data, tiny_sd, tmp_path):
    run = tmp_path / "zero"
    assert train(small_data, tiny_sd, run, "--shots", "0") == 0
    assert not (run / "model.safetensors").exists() and not (run / "calibration.json").exists()
    model, info = load_run(run)
    assert info.model.shots == 0 and info.classes == ["dots", "stripes"]
    images, _ = images_of(small_data, 0)
    out = model(images[:2])
    assert out["prompt_class"] is None and out["ref_map"] is None  # no shots: no pool, no prototype map
    assert out["anomaly_map"].shape == (2, 1, 64, 64)
    assert torch.equal(model.condition(None), model.conditions.mean(dim=0))
    assert set(integrity.read_manifest(run)) == {"config.json"}
    assert main(["calibrate", str(run), "--data", str(small_data), "--classes", "stripes"]) == 0  # thresholds later
    assert Calibration.load(run).classes["stripes"].n_images == 3
    assert set(integrity.read_manifest(run)) == {"config.json", "calibration.json"}


def test_a_damaged_run_is_refused_by_the_same_manifest(run_dir, tmp_path):
    assert set(integrity.read_manifest(run_dir)) == {"config.json", "model.safetensors", "calibration.json",
                                                     "trained_images.json"}
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_run(copy)


@pytest.mark.parametrize("argv, message", [
    (["--shots", "1"], "anomalysd needs --sd-model PATH"),
    (["--shots", "1", "--sd-model", "{nowhere}"], "is not a folder"),
    (["--sd-model", "{sd}"], "pass --shots K"),
    (["--shots", "1", "--sd-model", "{sd}", "--sd-lambda", "dost=0.3"], "names class(es) dost"),
    (["--shots", "1", "--sd-model", "{sd}", "--sd-lambda", "1.5"], "lambda must be in (0, 1]"),
    (["--shots", "1", "--sd-model", "{sd}", "--sd-scales", "1,x"], "--sd-scales"),
])
def test_bad_settings_are_one_line_errors(small_data, tiny_sd, tmp_path, capsys, argv, message):
    argv = [a.format(sd=tiny_sd, nowhere=tmp_path / "nowhere") for a in argv]
    rc = main(["train", "--data", str(small_data), "--model", "anomalysd", "--out", str(tmp_path / "r"),
               "--image-size", "64", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_a_finished_run_is_not_overwritten(run_dir, small_data, tiny_sd, capsys):
    assert train(small_data, tiny_sd, run_dir, "--shots", "0") == 2
    assert "already holds a finished run" in capsys.readouterr().err


RESUMABLE = ("--shots", "2", "--epochs", "3", "--batch-size", "4", "--sd-decoder-epochs", "2", "--sd-save-minutes", "0")


@pytest.fixture(scope="module")
def uninterrupted(small_data, tiny_sd, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert train(small_data, tiny_sd, out, *RESUMABLE) == 0
    return out


@pytest.mark.parametrize("stop_after", [("unet", 1), ("unet", 3), ("decoder", 1)])
def test_an_interrupted_fine_tuning_resumes_with_the_same_command(uninterrupted, small_data, tiny_sd, tmp_path,
                                                                  monkeypatch, capsys, stop_after):
    from nipad.runs.finetune_state import STATE, Saver

    save = Saver.__call__

    def save_then_stop(self, stage, epoch, optimizer, last):  # Ctrl-C right after a checkpoint
        save(self, stage, epoch, optimizer, last)
        if (stage, epoch) == stop_after:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(Saver, "__call__", save_then_stop)
    assert train(small_data, tiny_sd, run, *RESUMABLE) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert (run / STATE).is_file() and not json.loads((run / "config.json").read_text())["finished"]
    monkeypatch.setattr(Saver, "__call__", save)
    assert train(small_data, tiny_sd, run, *RESUMABLE) == 0
    assert f"resuming {run}: {stop_after[0]} fine-tuning after epoch {stop_after[1]}" in capsys.readouterr().out
    assert not (run / STATE).exists()
    config, expected = (json.loads((d / "config.json").read_text()) for d in (run, uninterrupted))
    assert config["finished"] and config["history"] == expected["history"]
    assert [(h["stage"], h["epoch"]) for h in config["history"]] == [("unet", 1), ("unet", 2), ("unet", 3),
                                                                       ("decoder", 1), ("decoder", 2)]
    tensors, reference = (load_file(str(d / "model.safetensors")) for d in (run, uninterrupted))
    assert tensors.keys() == reference.keys() and all(torch.equal(tensors[k], reference[k]) for k in reference)


def test_an_unfinished_run_resumes_only_with_its_own_settings(small_data, tiny_sd, tmp_path, monkeypatch, capsys):
    from nipad.runs.finetune_state import Saver

    def stop(self, *args):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(Saver, "__call__", stop)
    assert train(small_data, tiny_sd, run, *RESUMABLE) == 130
    monkeypatch.undo()
    assert train(small_data, tiny_sd, run, *RESUMABLE[:-2], "--sd-save-minutes", "0", "--lr", "0.01") == 2
    assert "holds an unfinished run of other settings" in capsys.readouterr().err
    assert train(small_data, tiny_sd, run, *RESUMABLE, "--lr", "0.01", "--overwrite") == 0


def test_the_perceptual_distance_is_lpips_where_its_weights_are_else_lite0_with_a_note(small_data, tiny_sd, tmp_path,
                                                                                        monkeypatch, capsys):
    base = ("--shots", "1", "--epochs", "0")
    assert train(small_data, tiny_sd, tmp_path / "lpips", *base) == 0
    run, _ = load_run(tmp_path / "lpips")
    assert run.config.perceptual == "lpips" and isinstance(run.perceptual, LPIPS)
    monkeypatch.setenv("NIPAD_LPIPS_WEIGHTS", str(tmp_path / "absent.safetensors"))
    capsys.readouterr()
    assert train(small_data, tiny_sd, tmp_path / "fallback", *base) == 0
    out = capsys.readouterr().out
    assert "are missing, so the perceptual distance is the EfficientNet-Lite0 stand-in" in out and "setup.sh" in out
    assert json.loads((tmp_path / "fallback" / "config.json").read_text())["model"]["perceptual"] == "lite0"
    assert train(small_data, tiny_sd, tmp_path / "asked", *base, "--perceptual", "lpips") == 2
    err = capsys.readouterr().err
    assert "LPIPS AlexNet weights" in err and "bash scripts/setup.sh" in err and "Traceback" not in err
    assert not (tmp_path / "asked").exists()  # refused before anything was tuned or written
    assert main(["test", str(tmp_path / "lpips"), "--data", str(small_data)]) == 2  # a run made with LPIPS needs it
    assert "bash scripts/setup.sh" in capsys.readouterr().err


def test_runs_saved_before_the_perceptual_setting_existed_keep_the_lite0_stand_in(run_dir):
    config = json.loads((run_dir / "config.json").read_text())["model"]
    assert AnomalySDConfig.from_dict(config).perceptual == config["perceptual"] == "lpips"
    del config["perceptual"]
    assert AnomalySDConfig.from_dict(config).perceptual == "lite0"
