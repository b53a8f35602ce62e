"""All-or-nothing updates of a run directory, one writer at a time (nipad.runs.locking), across processes.

Every write is part of an update (`update`, which nipad.runs.integrity's `write_file`, `write_json` and `forget` join
when one is open in the thread, or open for themselves):
1. All or nothing: the new files are written into RUN_DIR/.update/ (fsynced), then RUN_DIR/.update/journal.json (the
   new manifest and the files to move in or delete) is written atomically: its rename is the commit. Then the new
   files are renamed over the old ones, deleted files removed, manifest.json replaced last and .update/ removed.
2. Recovery (`settle`): after a kill -9 at any point, the run is the old one (no journal: .update/ is deleted by the
   next writer, readers ignore it) or the new one (a journal: the next reader or writer finishes the moves, which
   are idempotent, under the lock). So every file of a run always matches the others and the manifest.
A write that fails (disk full, no permission) is an OutputError naming the file, and leaves the run as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nipad.errors import CheckpointError, NipadError, OutputError
from nipad.runs.locking import run_lock
from nipad.runs.manifest import MANIFEST, current_files, entry, manifest_data, parse_files
from nipad.utils.io import FILE_MODE, atomic_write_json, make_dir, read_json

PENDING, JOURNAL = ".update", "journal.json"
_local = threading.local()


def _open_updates() -> dict[Path, Update]:
    if not hasattr(_local, "updates"):
        _local.updates = {}
    return _local.updates


def _check_name(name: str) -> str:
    if not name or Path(name).name != name or name.startswith(".") or name == MANIFEST:
        raise CheckpointError(f"{name!r} is not the name of a run file")
    return name


class Update:
    """The files an update replaces or deletes; staged in RUN_DIR/.update/ until `commit`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.pending = run_dir / PENDING
        self.staged: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()
        self.committed = False

    def write_file(self, name: str, write: Callable[[Path], object], fsync: bool = True) -> None:
        """Stage RUN_DIR/name as written by `write(path)`; OutputError naming the file if it cannot be written
        (the run is left as it was)."""
        final = self.run_dir / _check_name(name)
        target = self.pending / name
        try:
            self.pending.mkdir(exist_ok=True)
            target.unlink(missing_ok=True)
            write(target)
            os.chmod(target, FILE_MODE)
            if fsync:
                with open(target, "rb") as fh:
                    os.fsync(fh.fileno())
        except NipadError:
            target.unlink(missing_ok=True)
            raise
        except Exception as err:
            failure = _write_error(final, err)  # before the partial file is deleted: it is what filled the disk
            target.unlink(missing_ok=True)
            if failure is None:
                raise
            raise failure from err
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self.staged[name] = entry(target)
        self.removed.discard(name)

    def forget(self, name: str) -> None:
        """Delete RUN_DIR/name (if there) and its manifest entry, at the commit."""
        _check_name(name)
        if self.staged.pop(name, None) is not None:
            (self.pending / name).unlink(missing_ok=True)
        self.removed.add(name)

    def commit(self) -> None:
        """The journal (the commit point), then the moves, the manifest last (`_apply`)."""
        if not self.staged and not self.removed:
            return
        files = current_files(self.run_dir)
        for name in self.removed:
            files.pop(name, None)
        files.update(self.staged)
        journal = {"manifest": manifest_data(files), "move": sorted(self.staged), "remove": sorted(self.removed)}
        self.pending.mkdir(exist_ok=True)
        try:
            atomic_write_json(self.pending / JOURNAL, journal)
        except OSError as err:  # the run is untouched: the update is dropped
            raise _write_error(self.run_dir / MANIFEST, err.__cause__ or err) or err from err
        _fsync_dir(self.pending)
        self.committed = True  # from here on the update completes: now, or at the next use of the run
        _apply(self.run_dir, journal)

    def abort(self) -> None:
        if not self.committed:
            shutil.rmtree(self.pending, ignore_errors=True)


def _apply(run_dir: Path, journal: dict[str, Any]) -> None:
    """Move the staged files of a committed update into place, delete the removed ones, write the manifest, drop
    the journal. Idempotent: what was already done is skipped."""
    pending = run_dir / PENDING
    for name in journal["move"]:
        if (pending / name).is_file():
            os.replace(pending / name, run_dir / name)
    for name in journal["remove"]:
        (run_dir / name).unlink(missing_ok=True)
    atomic_write_json(run_dir / MANIFEST, journal["manifest"])
    _fsync_dir(run_dir)
    (pending / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(pending, ignore_errors=True)


def _read_journal(path: Path) -> dict[str, Any]:
    try:
        journal = read_json(path)
        parse_files(journal["manifest"])
        journal["move"] = [_check_name(str(n)) for n in journal["move"]]
        journal["remove"] = [_check_name(str(n)) for n in journal["remove"]]
        return journal
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, CheckpointError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}): an update of the run was interrupted and cannot be "
                              f"completed. Fix: restore the run from a backup or retrain it") from err


def _recover(run_dir: Path) -> None:
    """With the lock held: complete a committed update left by a killed writer, or delete an uncommitted one."""
    pending = run_dir / PENDING
    if not pending.exists() or run_dir.resolve() in _open_updates():
        return
    journal = pending / JOURNAL
    if journal.is_file():
        _apply(run_dir, _read_journal(journal))
    elif pending.is_dir():
        shutil.rmtree(pending)
    else:
        pending.unlink()


def settle(run_dir: str | Path) -> None:
    """Complete an update of the run that a killed process committed but did not finish (waiting for a writer that
    is finishing one); nothing to do, and no lock taken, in the usual case."""
    run_dir = Path(run_dir)
    if not (run_dir / PENDING / JOURNAL).exists() or run_dir.resolve() in _open_updates():
        return
    try:
        with run_lock(run_dir):
            _recover(run_dir)
    except OSError as err:
        raise CheckpointError(f"{run_dir} holds an interrupted update ({run_dir / PENDING}) that cannot be completed "
                              f"here ({err}). Fix: open the run once where it can be written (e.g. `nipad predict` "
                              f"on it), which completes the update") from err


@contextmanager
def update(run_dir: str | Path, create: bool = False) -> Iterator[Update]:
    """An all-or-nothing update of RUN_DIR under its writer lock: read the run inside it (the latest version),
    then write with `write_file` / `write_json` / `forget` (or the Update's methods); the files change together
    when the block ends, and not at all if it raises. Nested updates of one run in a thread are one update.
    `create`: make RUN_DIR if missing (training), otherwise a missing RUN_DIR is a CheckpointError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        if not create:
            raise CheckpointError(f"run directory {run_dir} does not exist; pass the --out folder of a `nipad "
                                  f"train` run")
        make_dir(run_dir)
    key = run_dir.resolve()
    open_updates = _open_updates()
    if key in open_updates:
        yield open_updates[key]
        return
    with run_lock(run_dir):
        _recover(run_dir)
        tx = Update(run_dir)
        open_updates[key] = tx
        try:
            yield tx
            del open_updates[key]
            tx.commit()
        except BaseException:
            open_updates.pop(key, None)
            tx.abort()
            raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_FULL = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded", "os error 122")


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether `err` (or what caused it) is a full disk: ENOSPC / EDQUOT, safetensors' "os error 28", or, for
    torch.save's bare "file write failed", no space left where it wrote."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(seen).lower() for text in _FULL):
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, OSError):
        return False
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _write_error(final: Path, err: BaseException) -> OutputError | None:
    """The OutputError for a failed write of `final`, or None for an error that is not about writing files."""
    if _disk_full(err, final.parent):
        return OutputError(f"no space left on device writing {final}: free space and rerun; the run is intact (its "
                           f"files are as before this update)")
    if isinstance(err, OSError):
        return OutputError(f"cannot write {final}: {err.strerror or err}; the run is intact (its files are as before "
                           f"this update). Fix: update the run where you can write to it")
    return None
