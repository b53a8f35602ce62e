"""Each family's `nipad train` options -> its typed training config: the flags land in it, with the same defaults,
presets and refusals as before the flags were made from the options."""

from __future__ import annotations

import pytest
import torch

from nipad.cli.main import build_parser
from nipad.cli.train_cmd import training_config
from nipad.engine.anomalysd import AnomalySDTraining
from nipad.engine.baselines import BaselineTraining
from nipad.errors import ConfigError
from nipad.families.onenip_family import ReconstructionTraining

CPU = torch.device("cpu")


def _config(*argv: str, device: torch.device = CPU):
    return training_config(build_parser().parse_args(["train", "--data", "d", "--out", "o", *argv]), device)


@pytest.mark.parametrize("argv", [
    ["--model", "onenip", "--preset", "cpu", "--epochs", "2", "--lr", "0.001", "--warmup-steps", "5", "--neck", "mfcn",
     "--decoder", "static",
     "--no-restoration", "--no-refiner", "--texture-dir", "t", "--synthetic-pool", "2", "--workers", "1",
     "--prompt-neighbours", "4", "--prompts-per-class", "8", "--fusion-weight", "0.5",
     "--mask-final-attention"],
    ["--model", "patchcore", "--mode", "separate", "--coreset-ratio", "0.1", "--shots", "2", "--batch-size", "4"],
    ["--model", "anomalysd", "--shots", "1", "--sd-model", "sd", "--sd-steps", "4", "--sd-lambda", "0.5",
     "--sd-scales", "1,2", "--sd-mask-batch", "2", "--sd-decoder-epochs", "1", "--perceptual", "lite0",
     "--sd-save-minutes", "0", "--epochs", "2", "--lr", "0.001"],
])
def test_every_flag_of_a_model_makes_a_config(argv):
    config = _config(*argv, "--image-size", "64", "--seed", "3", "--false-alarm-rate", "0.05")
    assert config.model.image_size == 64


def test_the_flags_land_in_the_family_s_typed_config():
    rec = _config("--model", "uniad", "--epochs", "3", "--neck", "mfcn", "--image-size", "64", "--shots", "4")
    assert isinstance(rec, ReconstructionTraining) and rec.preset == "nipad" and rec.model.model == "uniad"
    assert rec.model.neck == "mfcn" and rec.model.image_size == 64 and rec.train.epochs == 3 and rec.train.shots == 4
    assert not rec.model.prompt_matching and rec.model.score_map == "anomaly"  # UniAD has no prompt to match
    assert rec.train.amp and not _config("--model", "onenip", "--fp32").train.amp
    near = _config("--model", "onenip", "--prompt-neighbours", "4", "--prompts-per-class", "8").train
    assert (near.prompt_neighbours, near.prompts_per_class) == (4, 8)
    default = _config("--model", "onenip")
    assert default.model.fusion == "validated" and default.model.prompt_matching
    assert default.train.prompts_per_class == 16
    assert _config("--model", "onenip", device=torch.device("cuda")).preset == "paper"
    assert _config("--model", "onenip", "--preset", "cpu").model.fusion == "fixed"
    assert not _config("--model", "onenip", "--no-prompt-matching").model.prompt_matching
    assert _config("--model", "onenip", "--preset", "cpu", "--fusion", "validated").model.fusion == "validated"
    assert _config("--model", "onenip", "--fusion-weight", "0.5").model.fusion_weight == 0.5
    assert _config("--model", "onenip", "--mask-final-attention").model.mask_final_attention
    assert not _config("--model", "onenip").model.mask_final_attention
    assert not _config("--model", "onenip", "--no-refiner").model.refiner
    assert rec.train.warmup_steps == 300 and _config("--model", "onenip", "--warmup-steps", "0").train.warmup_steps == 0
    assert default.train.max_steps == 3200 and _config("--model", "onenip", "--epochs", "30").train.max_steps == 0
    assert _config("--model", "onenip", "--epochs", "30", "--max-steps", "99").train.max_steps == 99
    base = _config("--model", "padim", "--padim-dims", "7", "--batch-size", "4", "--shots", "5", "--seed", "9",
                   "--false-alarm-rate", "0.05")
    assert isinstance(base, BaselineTraining) and base.model.dims == 7 and base.model.seed == 9
    assert (base.train.batch_size, base.train.shots, base.train.false_alarm_rate) == (4, 5, 0.05)
    assert base.train.seed == 9 and _config("--model", "knn").model.mode == "unified"
    assert _config("--model", "patchcore", "--coreset-ratio", "0.2").model.coreset_ratio == 0.2
    sd = _config("--model", "anomalysd", "--shots", "2", "--sd-model", "sd", "--sd-lambda", "0.5", "--sd-lambda",
                 "dots=0.3", "--perceptual", "lite0", "--epochs", "6")
    assert isinstance(sd, AnomalySDTraining) and sd.model.shots == 2 and sd.model.perceptual == "lite0"
    assert sd.model.strength == 0.5 and sd.model.class_strength == {"dots": 0.3} and sd.tuning.epochs == 6
    assert sd.save_minutes == 10.0 and sd.false_alarm_rate == 0.01  # the defaults where no flag is given


@pytest.mark.parametrize("argv, message", [
    (["--model", "anomalysd", "--sd-model", "sd"], "pass --shots K"),
    (["--model", "anomalysd", "--shots", "1", "--sd-lambda", "a=x"], "give VALUE or CLASS=VALUE"),
    (["--model", "anomalysd", "--shots", "1", "--sd-scales", "1,x"], "give grid sizes separated by commas"),
    (["--model", "onenip", "--image-size", "70"], "multiple of 16"),
    (["--model", "uniad", "--preset", "cpu", "--fusion", "fixed", "--image-size", "32"], "multiple of 16"),
    (["--model", "onenip", "--preset", "cpu", "--prompt-matching"], "prompt matching needs"),
])
def test_what_only_the_config_can_check_is_still_refused_there(argv, message):
    with pytest.raises(ConfigError, match=message):
        _config(*argv)
