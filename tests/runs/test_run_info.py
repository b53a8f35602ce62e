"""config.json, the record of a run of any family."""

from __future__ import annotations

import pytest

from nipad.errors import CheckpointError
from nipad.models.onenip.model_config import ModelConfig
from nipad.runs import integrity
from nipad.runs.run_info import CONFIG, RECONSTRUCTION, RunInfo, read_family, read_info, write_info


def _info(finished: bool) -> RunInfo[ModelConfig]:
    return RunInfo(ModelConfig(image_size=64), {"epochs": 3}, ["a", "b"], ["/data"], epochs_done=2,
                   finished=finished, prompt_classes=["a"], extra={"history": [{"epoch": 1, "mse": 0.5}]})


def test_the_record_round_trips_through_config_json(tmp_path):
    write_info(tmp_path, _info(finished=False))
    assert read_info(tmp_path, ModelConfig.from_dict) == _info(finished=False)
    assert read_family(tmp_path) == RECONSTRUCTION


def test_a_config_written_before_families_were_recorded_is_a_reconstruction_run(tmp_path):
    old = _info(finished=True).to_dict()
    del old["family"], old["epochs_done"]
    integrity.write_json(tmp_path, CONFIG, old)
    info = read_info(tmp_path, ModelConfig.from_dict)
    assert read_family(tmp_path) == info.family == RECONSTRUCTION and info.epochs_done == 0 and info.finished


def test_what_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_family(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not a nipad run directory"):
        read_family(tmp_path)
    (tmp_path / CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match="is corrupt"):
        read_family(tmp_path)
