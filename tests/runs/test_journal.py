"""Journalled updates of a run: all files or none, a committed update completed after a kill, an uncommitted one
dropped, and a full disk named as such."""

from __future__ import annotations

import errno
import json

import pytest

from nipad.errors import CheckpointError, OutputError
from nipad.runs.journal import JOURNAL, PENDING, settle, update
from nipad.runs.manifest import MANIFEST, entry, read_manifest


def test_an_update_writes_all_its_files_or_none(tmp_path):
    with update(tmp_path) as tx:
        tx.write_file("config.json", lambda p: p.write_text("{}"))
        tx.write_file("calibration.json", lambda p: p.write_text("[]"))
        assert not (tmp_path / "config.json").exists()  # staged until the commit
    assert set(read_manifest(tmp_path)) == {"config.json", "calibration.json"} and not (tmp_path / PENDING).exists()
    with pytest.raises(RuntimeError, match="stop"), update(tmp_path) as tx:
        tx.write_file("config.json", lambda p: p.write_text('{"new": 1}'))
        tx.forget("calibration.json")
        raise RuntimeError("stop")
    assert (tmp_path / "config.json").read_text() == "{}" and (tmp_path / "calibration.json").is_file()
    with update(tmp_path) as tx:
        tx.forget("calibration.json")
    assert set(read_manifest(tmp_path)) == {"config.json"} and not (tmp_path / "calibration.json").exists()


def test_a_missing_run_is_an_error_unless_created_and_run_file_names_are_checked(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"), update(tmp_path / "nowhere"):
        pass
    with update(tmp_path / "new", create=True) as tx:
        for name in (MANIFEST, ".lock", "../x", ""):
            with pytest.raises(CheckpointError, match="is not the name of a run file"):
                tx.write_file(name, lambda p: p.write_text("x"))


def test_a_committed_update_left_by_a_killed_writer_is_completed_and_an_uncommitted_one_dropped(tmp_path):
    pending = tmp_path / PENDING
    pending.mkdir()
    (pending / "config.json").write_text('{"v": 2}')
    files = {"config.json": entry(pending / "config.json")}
    (pending / JOURNAL).write_text(json.dumps({"manifest": {"format": "nipad-manifest/1", "algorithm": "sha256",
                                                            "files": files}, "move": ["config.json"], "remove": []}))
    settle(tmp_path)
    assert (tmp_path / "config.json").read_text() == '{"v": 2}' and read_manifest(tmp_path) == files
    assert not pending.exists()
    pending.mkdir()
    (pending / "config.json").write_text('{"v": 3}')  # staged, never committed: no journal
    with update(tmp_path):
        assert not pending.exists()
    assert (tmp_path / "config.json").read_text() == '{"v": 2}'


def test_a_full_disk_is_one_clear_error_and_the_run_is_untouched(tmp_path):
    def full(path):
        path.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    message = "no space left on device writing .*config.json: free space and rerun"
    with pytest.raises(OutputError, match=message), update(tmp_path) as tx:
        tx.write_file("config.json", full)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
