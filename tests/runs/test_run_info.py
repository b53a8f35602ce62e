"""config.json, the record of a run of any family, and the one guard that keeps `nipad train` from replacing a
finished run (or one it cannot read) without --overwrite, for every family."""

from __future__ import annotations

import pytest

from nipad.cli.main import main
from nipad.runs import integrity
from nipad.runs.run_info import (
    CONFIG, RECONSTRUCTION, RunInfo, read_family, read_info, refuse_finished, write_info,
)
from nipad.errors import CheckpointError, ConfigError
from nipad.models.onenip.model_config import ModelConfig


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


def test_the_guard_lets_a_new_or_unfinished_run_through_and_stops_a_finished_or_unreadable_one(tmp_path):
    refuse_finished(tmp_path, overwrite=False)  # nothing there yet
    write_info(tmp_path, _info(finished=False))
    refuse_finished(tmp_path, overwrite=False)  # resumed
    write_info(tmp_path, _info(finished=True))
    with pytest.raises(ConfigError, match="already holds a finished run"):
        refuse_finished(tmp_path, overwrite=False)
    (tmp_path / CONFIG).write_text("[]")
    with pytest.raises(ConfigError, match="cannot be read"):
        refuse_finished(tmp_path, overwrite=False)
    refuse_finished(tmp_path, overwrite=True)


@pytest.mark.parametrize("argv", [
    ["--model", "onenip", "--preset", "cpu"],
    ["--model", "uniad", "--preset", "cpu"],
    ["--model", "patchcore"],
    ["--model", "padim"],
    ["--model", "knn"],
    ["--model", "anomalysd", "--shots", "1", "--sd-model", "sd", "--perceptual", "lite0"],
])
def test_every_family_keeps_a_run_whose_config_it_cannot_read(tiny_mvtec, tmp_path, capsys, argv):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG).write_text("{not json")
    assert main(["train", "--data", str(tiny_mvtec), "--out", str(out), "--image-size", "64", *argv]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert (out / CONFIG).read_text() == "{not json" and sorted(p.name for p in out.iterdir()) == [CONFIG]
