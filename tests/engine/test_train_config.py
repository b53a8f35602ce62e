"""Training settings: saved and read back; an unknown setting is refused, as the model settings refuse theirs."""

from __future__ import annotations

import pytest

from nipad.engine.train_config import TrainConfig, step_budget, train_preset
from nipad.errors import ConfigError
from nipad.models.onenip.model_config import ModelConfig


def test_settings_round_trip_and_unknown_ones_are_refused_like_the_model_settings():
    config = train_preset("cpu", epochs=3, texture_dir="dtd")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown training settings \['warmup'\]"):
        TrainConfig.from_dict({**config.to_dict(), "warmup": 5})
    with pytest.raises(ConfigError, match=r"unknown model settings \['warmup'\]"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "warmup": 5})


def test_a_negative_warmup_is_refused():
    with pytest.raises(ConfigError, match="--warmup-steps must be 0 or more"):
        TrainConfig(warmup_steps=-1)


@pytest.mark.parametrize("bad", [{"prompt_neighbours": -1}, {"prompts_per_class": 0}])
def test_prompt_settings_out_of_range_are_refused(bad):
    with pytest.raises(ConfigError, match="--prompt-neighbours must be 0 or more and --prompts-per-class at least 1"):
        TrainConfig(**bad)


@pytest.mark.parametrize("settings, message", [
    ({"lr": float("nan")}, "--lr must be a positive number, got nan"),
    ({"lr": -1.0}, "--lr must be a positive number, got -1.0"),
    ({"lr": 0.0}, "--lr must be a positive number"),
    ({"workers": -1}, "--workers and --seed must be 0 or more"),
    ({"seed": -1}, "--workers and --seed must be 0 or more"),
])
def test_values_torch_would_refuse_with_a_traceback_are_refused_naming_the_flag(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings)


def test_the_step_budget_trains_fewer_epochs_only_where_the_epochs_would_exceed_it():
    nipad = train_preset("nipad")
    assert step_budget(nipad, 1366).epochs == 19  # five products: 171 steps an epoch, 19 reach 3200
    assert step_budget(nipad, 831).epochs == 30  # bottle + magnetic_tile: 30 epochs are 3120 steps
    assert step_budget(nipad, 1366, world_size=2).epochs == 30  # 86 steps an epoch per process
    assert step_budget(nipad, 10**6).epochs == 1
    assert step_budget(train_preset("cpu"), 1366).epochs == 30  # no budget: the authors' schedule at a CPU budget
    assert step_budget(train_preset("nipad", epochs=30), 1366).epochs == 30  # epochs given: all of them
    with pytest.raises(ConfigError, match="--max-steps must be 0 or more"):
        TrainConfig(max_steps=-1)
