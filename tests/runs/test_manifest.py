"""The manifest of a run's file hashes: entries, what a damaged manifest reads as, and NaN weights."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from nipad.errors import CheckpointError
from nipad.runs.manifest import (
    FORMAT,
    MANIFEST,
    check_finite,
    current_files,
    entry,
    manifest_data,
    parse_files,
    read_manifest,
)


def test_an_entry_is_the_files_sha256_and_size(tmp_path):
    (tmp_path / "config.json").write_bytes(b"{}")
    assert entry(tmp_path / "config.json") == {"sha256": hashlib.sha256(b"{}").hexdigest(), "bytes": 2}


def test_a_run_without_manifest_is_recorded_as_its_files_are(tmp_path):
    assert read_manifest(tmp_path) is None
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "notes.txt").write_bytes(b"not a run file")
    assert current_files(tmp_path) == {"config.json": entry(tmp_path / "config.json")}


def test_the_manifest_round_trips_and_a_damaged_one_is_a_clear_error(tmp_path):
    files = {"config.json": {"sha256": "ab" * 32, "bytes": 2, "previous": {"sha256": "cd" * 32, "bytes": 3}}}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest_data(files)))
    assert read_manifest(tmp_path) == files == current_files(tmp_path)
    with pytest.raises(ValueError, match="expected 'nipad-manifest/1'"):
        parse_files({"format": "other", "files": {}})
    with pytest.raises(ValueError, match="not a sha256 and a byte count"):
        parse_files({"format": FORMAT, "files": {"config.json": {"sha256": "ab", "bytes": -1}}})
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is corrupt .* restore the run from a backup"):
        read_manifest(tmp_path)


def test_nan_or_infinite_weights_are_refused_and_integer_tensors_pass():
    check_finite({"w": torch.ones(3), "owners": torch.zeros(2, dtype=torch.long)}, "model.safetensors")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 2 tensor\(s\) \(a, b\)"):
        check_finite({"a": torch.tensor([float("nan")]), "b": torch.tensor([float("inf")]), "c": torch.ones(1)},
                     "model.safetensors")
