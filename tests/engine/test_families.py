"""The list of model families: every --model has exactly one, and `load_run` picks it from config.json."""

from __future__ import annotations

import json

import pytest

from nipad.runs import integrity
from nipad.engine.families import FAMILIES, all_models, family_named, family_of_model, load_run
from nipad.runs.run_info import CONFIG
from nipad.errors import ConfigError
from nipad.models.onenip.detector import Detector


def test_every_model_belongs_to_exactly_one_family():
    assert sorted(all_models()) == ["anomalysd", "knn", "onenip", "padim", "patchcore", "uniad"]
    assert len(all_models()) == len(set(all_models()))
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    for model in all_models():
        assert model in family_of_model(model).models
        assert family_named(family_of_model(model).name) is family_of_model(model)


def test_an_unknown_model_or_family_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'vae'; choose one of onenip"):
        family_of_model("vae")
    with pytest.raises(ConfigError, match="family 'vae', which this nipad does not have"):
        family_named("vae")


def test_load_run_uses_the_family_the_run_names(tiny_uniad_run, tmp_path):
    model, info = load_run(tiny_uniad_run)
    assert isinstance(model, Detector) and info.family == "reconstruction" and not model.training
    config = json.loads((tiny_uniad_run / CONFIG).read_text())
    integrity.write_json(tmp_path, CONFIG, {**config, "family": "vae"})
    with pytest.raises(ConfigError, match="family 'vae'"):
        load_run(tmp_path)
