"""The registry of model families: every --model has exactly one family, `load_run` picks the family a run's
config.json names, and a new family is one module plus its registration (the toy family of toy_family.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nipad.cli.main import main
from nipad.errors import ConfigError
from nipad.families import (
    all_models,
    families,
    family_named,
    family_of_model,
    load_run,
    register,
    unregister,
)
from nipad.models.onenip.detector import Detector
from nipad.runs import integrity
from nipad.runs.run_info import CONFIG

import toy_family


def test_every_model_belongs_to_exactly_one_family():
    assert all_models() == ["onenip", "uniad", "anomalysd", "patchcore", "padim", "knn"]
    assert len({f.name for f in families()}) == len(families())
    for model in all_models():
        assert model in family_of_model(model).models
        assert family_named(family_of_model(model).name) is family_of_model(model)


def test_an_unknown_model_or_family_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'vae'; choose one of onenip"):
        family_of_model("vae")
    with pytest.raises(ConfigError, match="family 'vae', which this nipad does not have"):
        family_named("vae")


def test_a_taken_name_or_model_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="patchcore is already registered"):
        register(family_of_model("patchcore"))


def test_load_run_uses_the_family_the_run_names(tiny_uniad_run, tmp_path):
    model, info = load_run(tiny_uniad_run)
    assert isinstance(model, Detector) and info.family == "reconstruction" and not model.training
    config = json.loads((tiny_uniad_run / CONFIG).read_text())
    integrity.write_json(tmp_path, CONFIG, {**config, "family": "vae"})
    with pytest.raises(ConfigError, match="family 'vae'"):
        load_run(tmp_path)


@pytest.fixture
def toy():
    toy_family.CALLS.clear()
    register(toy_family.FAMILY)
    yield toy_family
    unregister(toy_family.FAMILY)


def test_a_registered_family_s_help_lists_its_flags(toy, capsys):
    with pytest.raises(SystemExit) as end:
        main(["train", "--model", "toy", "--help"])
    out = capsys.readouterr().out
    assert end.value.code == 0
    assert "--toy-level L" in out and "how toy-like the toy model is" in out and "--toy-loud" in out
    assert "--lr" not in out and "toy" in out.split("--model {")[1].split("}")[0]


def test_a_registered_family_s_range_is_enforced(toy, tiny_mvtec, tmp_path, capsys):
    with pytest.raises(SystemExit) as end:
        main(["train", "--model", "toy", "--data", str(tiny_mvtec), "--out", str(tmp_path / "r"), "--toy-level", "9"])
    assert end.value.code == 2 and "argument --toy-level: must be in [1, 5], got 9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "toy", "--data", str(tiny_mvtec), "--out", str(tmp_path / "r"), "--lr", "1"])
    assert not toy.CALLS


def test_train_calls_the_registered_family_with_its_parsed_options(toy, tiny_mvtec, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--model", "toy", "--data", str(tiny_mvtec), "--out", str(out), "--toy-level", "2",
                 "--toy-loud", "--image-size", "64"]) == 0
    [(config, data, run_dir, overwrite)] = toy.CALLS
    assert config == toy.ToyTraining(toy.ToyOptions(toy_level=2, toy_loud=True), 64)
    assert data.classes == ["dots", "stripes"] and len(data.samples) == 24 and data.roots == [str(tiny_mvtec)]
    assert run_dir == out and not overwrite


def test_load_run_dispatches_to_a_registered_family(toy, tmp_path):
    integrity.write_json(tmp_path, CONFIG, {"family": "toy"})
    assert load_run(tmp_path) == ("toy model", Path(tmp_path))


def test_unregistering_removes_the_model(toy):
    unregister(toy.FAMILY)
    assert "toy" not in all_models()
    register(toy.FAMILY)
