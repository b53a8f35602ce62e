"""Integrity of a run directory: a sha256 of every file nipad reads back, written at save time, checked at load; and
updates that are all-or-nothing, one writer at a time, across processes.

    RUN_DIR/manifest.json  {"format": "nipad-manifest/1", "algorithm": "sha256",
                            "files": {"model.safetensors": {"sha256": ..., "bytes": ...}, "config.json": ..., ...}}

Every family (OneNIP/UniAD, PatchCore/PaDiM, AnomalySD) writes its run files through `write_file` / `write_json`
and its loaders call `verify` on each file before reading it, so a flipped bit, a truncated copy or an edited file
is a CheckpointError naming the file, never a silent wrong score.

Updates. Every write is part of an update (`update`, which `write_file`, `write_json` and `forget` join when one is
open in the thread, or open for themselves):
1. One writer at a time: an update holds an exclusive `flock` on RUN_DIR/.lock (`run_lock`) from before it reads the
   run to after its commit, in every process (`nipad prompt add`, `nipad calibrate`, the service's prompt updates,
   training's checkpoints), so a read-modify-write always starts from the latest files on disk and no update is lost.
   A writer that has to wait says so on stderr. (POSIX only: elsewhere a write is refused with a clear error.)
2. All or nothing: the new files are written into RUN_DIR/.update/ (fsynced), then RUN_DIR/.update/journal.json (the
   new manifest and the files to move in or delete) is written atomically: its rename is the commit. Then the new
   files are renamed over the old ones, deleted files removed, manifest.json replaced last and .update/ removed.
3. Recovery (`settle`): after a kill -9 at any point, the run is the old one (no journal: .update/ is deleted by the
   next writer, readers ignore it) or the new one (a journal: the next reader or writer finishes the moves, which
   are idempotent, under the lock). So every file of a run always matches the others and the manifest.
4. Readers take no lock: `consistent` reads a run again when its manifest changed while it was read (or a commit was
   under way), so a reader sees one version of the run, never the weights of one and the config of another.
   `version` is what a long-lived reader (the service) compares to notice that another process changed the run.

A run written before manifests existed loads with a warning (nothing to check against); the first update records the
hashes of all its files as they are. A run whose config.json says it was written with one (`SEALED`) and that lost
its manifest (deleted, or replaced by a folder) is refused as damaged. `check_finite` refuses NaN or infinite
weights, which a hash cannot catch (a diverged training writes them faithfully). A write that fails (disk full, no
permission) is an OutputError naming the file, and leaves the run as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from nipad.errors import CheckpointError, NipadError, OutputError
from nipad.utils.io import FILE_MODE, atomic_write_json, make_dir, read_json

try:
    import fcntl
except ImportError:  # not POSIX (Windows)
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
FORMAT = "nipad-manifest/1"
# the files of a run that nipad reads back (metrics.json and report.html are outputs, never read)
RUN_FILES = ("config.json", "model.safetensors", "calibration.json", "train_state.pt", "trained_images.json")
LOCK, PENDING, JOURNAL = ".lock", ".update", "journal.json"
SEALED = "sealed"  # config.json's key (True) for a run written with a manifest: one that lost it is refused
_warned: set[Path] = set()
T = TypeVar("T")


def digest(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _entry(path: Path) -> dict[str, Any]:
    return {"sha256": digest(path), "bytes": path.stat().st_size}


def read_manifest(run_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """The recorded files of a run ({name: {"sha256", "bytes"[, "previous"]}}), or None for a run without one."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return _parse_files(read_json(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}): the run's files cannot be checked. Fix: restore the run "
                              f"from a backup or retrain it") from err


def _parse_files(data: Any) -> dict[str, dict[str, Any]]:
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
    files = {str(k): dict(v) for k, v in data["files"].items()}
    for name, entry in files.items():
        for e in (entry, *([entry["previous"]] if "previous" in entry else [])):
            if not (isinstance(e["sha256"], str) and type(e["bytes"]) is int and e["bytes"] >= 0):
                raise ValueError(f"the entry of {name} is not a sha256 and a byte count: {str(e)[:80]}")
    return files


def _manifest(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"format": FORMAT, "algorithm": "sha256", "files": files}


def _current(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest to update; for a run without one, the hashes of its files as they are now."""
    files = read_manifest(run_dir)
    if files is None:
        files = {name: _entry(run_dir / name) for name in RUN_FILES if (run_dir / name).is_file()}
    return files


# -- one writer at a time ------------------------------------------------------------------------------------------

class _Held:
    """This process's hold on one run's lock: threads take turns (`turn`), the outermost holder has the flock."""

    def __init__(self) -> None:
        self.turn = threading.RLock()
        self.depth = 0
        self.fd = -1


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()
_local = threading.local()


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


# -- all-or-nothing updates -----------------------------------------------------------------------------------------

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

    def write_file(self, name: str, write: Callable[[Path], None], fsync: bool = True) -> None:
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
        self.staged[name] = _entry(target)
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
        files = _current(self.run_dir)
        for name in self.removed:
            files.pop(name, None)
        files.update(self.staged)
        journal = {"manifest": _manifest(files), "move": sorted(self.staged), "remove": sorted(self.removed)}
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
        _parse_files(journal["manifest"])
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


def write_file(run_dir: str | Path, name: str, write: Callable[[Path], None], fsync: bool = True) -> None:
    """Write RUN_DIR/name with `write(path)` and record its hash in the manifest, as part of the open update of the
    run (or as an update of its own)."""
    with update(run_dir, create=True) as tx:
        tx.write_file(name, write, fsync)


def write_json(run_dir: str | Path, name: str, data: Any) -> None:
    """RUN_DIR/name as indented JSON, with its hash recorded (see `write_file`)."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    write_file(run_dir, name, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def forget(run_dir: str | Path, name: str) -> None:
    """Delete RUN_DIR/name (if there) and its manifest entry (see `write_file`)."""
    with update(run_dir, create=True) as tx:
        tx.forget(name)


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


def _write_error(final: Path, err: Exception) -> OutputError | None:
    """The OutputError for a failed write of `final`, or None for an error that is not about writing files."""
    if _disk_full(err, final.parent):
        return OutputError(f"no space left on device writing {final}: free space and rerun; the run is intact (its "
                           f"files are as before this update)")
    if isinstance(err, OSError):
        return OutputError(f"cannot write {final}: {err.strerror or err}; the run is intact (its files are as before "
                           f"this update). Fix: update the run where you can write to it")
    return None


# -- reading ----------------------------------------------------------------------------------------------------------

def version(run_dir: str | Path) -> tuple[str | None, bool]:
    """What changes whenever the run does: (sha256 of manifest.json or None, whether an update is being applied)."""
    run_dir = Path(run_dir)
    try:
        text = (run_dir / MANIFEST).read_bytes()
        stamp: str | None = hashlib.sha256(text).hexdigest()
    except OSError:
        stamp = None
    return stamp, (run_dir / PENDING / JOURNAL).exists()


def consistent(run_dir: str | Path, load: Callable[[], T], attempts: int = 50) -> T:
    """`load()` (which reads files of RUN_DIR) again until no update changed the run while it ran, so it saw one
    version of every file; a CheckpointError stands only if the run did not change meanwhile."""
    run_dir = Path(run_dir)
    for attempt in range(attempts):
        settle(run_dir)
        before = version(run_dir)
        try:
            out = load()
        except Exception:  # files of two versions can fail in any way: judged by whether the run changed
            if version(run_dir) == before and not before[1]:
                raise
        else:
            if version(run_dir) == before and not before[1]:
                return out
        time.sleep(min(0.01 * (attempt + 1), 0.2))
    raise CheckpointError(f"{run_dir} changed every time it was read ({attempts} times): another process keeps "
                          f"updating it. Fix: try again when it is done")


def verify(run_dir: str | Path, name: str) -> None:
    """CheckpointError unless RUN_DIR/name has the content nipad recorded for it; a missing file passes (its
    reader says it is missing); a run without manifest passes with a warning. An update that a killed process
    committed is completed first (`settle`)."""
    run_dir = Path(run_dir)
    path = run_dir / name
    settle(run_dir)
    files = read_manifest(run_dir)
    if files is None:
        _refuse_unsealed(run_dir)
        if path.is_file() and run_dir.resolve() not in _warned:
            _warned.add(run_dir.resolve())
            warnings.warn(f"{run_dir} has no {MANIFEST} (written by an older nipad), so its files cannot be checked "
                          f"for damage", stacklevel=3)
        return
    if not path.is_file():
        return
    entry = files.get(name)
    if entry is None:
        raise CheckpointError(f"{path} is not listed in {run_dir / MANIFEST}: it was not written with this run "
                              f"(copied in from elsewhere?). Fix: restore the run from a backup or retrain it")
    # "previous": written by nipad before updates were journalled, which listed a file's old hash during its rename
    accepted = [entry, *([entry["previous"]] if "previous" in entry else [])]
    size = path.stat().st_size
    if not any(size == int(e["bytes"]) for e in accepted):
        problem = f"{size} bytes where {entry['bytes']} were written (truncated or partly copied?)"
    else:
        found = digest(path)
        if any(found == e["sha256"] for e in accepted):
            return
        problem = f"its sha256 {found[:16]}... is not the {entry['sha256'][:16]}... recorded when it was written"
    raise CheckpointError(f"{path} is corrupt: {problem}; the file was damaged or changed after nipad wrote it. "
                          f"Fix: restore the run from a backup or retrain it")


def _refuse_unsealed(run_dir: Path) -> None:
    """CheckpointError when RUN_DIR has no manifest but its config.json records that it was written with one (the
    manifest was deleted or replaced); a run from before manifests passes (its readers warn)."""
    try:
        sealed = read_json(run_dir / "config.json").get(SEALED) is True
    except (OSError, ValueError, AttributeError):  # config.json's own reader says what is wrong with it
        return
    if sealed:
        manifest = run_dir / MANIFEST
        raise CheckpointError(f"{manifest} {'is not a file' if manifest.exists() else 'is missing'}, but "
                              f"{run_dir / 'config.json'} records that the run was written with one: the run was "
                              f"damaged or edited, and its files cannot be checked. Fix: restore the run (or its "
                              f"{MANIFEST}) from a backup, or retrain it")


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """CheckpointError if any floating-point tensor holds NaN or infinity: such a model gives no usable score."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite values in {len(bad)} tensor(s) ({', '.join(bad[:3])}): "
                              f"the model is broken (training diverged, or the file was edited) and its scores "
                              f"would mean nothing. Fix: retrain (a lower --lr) or restore the run from a backup")
