"""The writer lock of a run: re-entrant in a thread, exclusive between threads and processes, refused without flock."""

from __future__ import annotations

import threading

import pytest

from nipad.errors import OutputError
from nipad.runs import locking
from nipad.runs.locking import LOCK, run_lock


def _take(run_dir, then):
    """Take the run's lock in this thread, call `then`, let go."""
    with run_lock(run_dir):
        then()


def test_the_lock_is_reentrant_in_a_thread_and_makes_another_thread_wait(tmp_path):
    order: list[str] = []
    with run_lock(tmp_path), run_lock(tmp_path):  # nested: no deadlock
        other = threading.Thread(target=_take, args=(tmp_path, lambda: order.append("other")))
        other.start()
        other.join(0.3)
        assert other.is_alive() and order == []  # waits while this thread holds the lock
        order.append("first")
    other.join(10)
    assert order == ["first", "other"] and (tmp_path / LOCK).is_file()


def test_another_process_holding_the_flock_is_waited_for_and_said_so(tmp_path, capfd):
    import fcntl
    import os

    fd = os.open(tmp_path / LOCK, os.O_RDWR | os.O_CREAT)  # another open file: as another process holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = threading.Event()
    writer = threading.Thread(target=_take, args=(tmp_path, done.set))
    writer.start()
    assert not done.wait(0.5)
    os.close(fd)
    assert done.wait(10)
    writer.join(10)
    assert "is being updated by another nipad process; waiting for it to finish" in capfd.readouterr().err


def test_without_posix_file_locks_a_write_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(locking, "fcntl", None)
    with pytest.raises(OutputError, match="fcntl.flock"), run_lock(tmp_path / "other"):
        pass
    assert not (tmp_path / "other" / LOCK).exists()
