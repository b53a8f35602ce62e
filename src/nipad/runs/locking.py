"""One writer at a time per run directory: an exclusive `flock` on RUN_DIR/.lock, held by every update of the run
(nipad.runs.journal) from before it reads the run to after its commit, in every process (`nipad prompt add`,
`nipad calibrate`, the service's prompt updates, training's checkpoints), so a read-modify-write always starts from
the latest files on disk and no update is lost. A writer that has to wait says so on stderr. POSIX only: elsewhere a
write is refused with a clear error."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nipad.errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX (Windows)
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"


class _Held:
    """This process's hold on one run's lock: threads take turns (`turn`), the outermost holder has the flock."""

    def __init__(self) -> None:
        self.turn = threading.RLock()
        self.depth = 0
        self.fd = -1


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


def _flock(run_dir: Path) -> int:
    if fcntl is None:
        raise OutputError(f"cannot update {run_dir}: nipad locks a run while it writes it (fcntl.flock), which this "
                          f"system lacks. Fix: update runs on Linux or macOS")
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as err:
        raise OutputError(f"cannot write into {run_dir} (creating {path}: {err.strerror or err}). Fix: update the run "
                          f"where you can write to it") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"nipad: {run_dir} is being updated by another nipad process; waiting for it to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run's writer lock (RUN_DIR/.lock, exclusive flock): across processes, and between the threads of
    this one; re-entrant in a thread. Blocks while another writer holds it."""
    key = Path(run_dir).resolve()
    with _held_guard:
        held = _held.setdefault(key, _Held())
    with held.turn:
        if held.depth == 0:
            held.fd = _flock(key)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                os.close(held.fd)  # releases the flock
                held.fd = -1
