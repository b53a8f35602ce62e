"""Integrity of a run directory: a sha256 of every file nipad reads back, written at save time, checked at load; and
updates that are all-or-nothing, one writer at a time, across processes.

Every family (OneNIP/UniAD, PatchCore/PaDiM, AnomalySD) writes its run files through `write_file` / `write_json`
and its loaders call `verify` on each file before reading it, so a flipped bit, a truncated copy or an edited file
is a CheckpointError naming the file, never a silent wrong score. The parts: the manifest of hashes
(nipad.runs.manifest), the writer lock (nipad.runs.locking) and the journalled updates (nipad.runs.journal); their
names are importable from here too.

Readers take no lock: `consistent` reads a run again when its manifest changed while it was read (or a commit was
under way), so a reader sees one version of the run, never the weights of one and the config of another. `version`
is what a long-lived reader (the service) compares to notice that another process changed the run.

A run written before manifests existed loads with a warning (nothing to check against); the first update records the
hashes of all its files as they are. A run whose config.json says it was written with one (`SEALED`) and that lost
its manifest (deleted, or replaced by a folder) is refused as damaged. `check_finite` refuses NaN or infinite
weights, which a hash cannot catch (a diverged training writes them faithfully).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nipad.errors import CheckpointError
from nipad.runs.file_names import CONFIG
from nipad.runs.journal import JOURNAL, PENDING, Update, settle, update
from nipad.runs.locking import LOCK, run_lock
from nipad.runs.manifest import MANIFEST, RUN_FILES, SEALED, check_finite, digest, read_manifest
from nipad.utils.io import read_json

__all__ = [
    "JOURNAL", "LOCK", "MANIFEST", "PENDING", "RUN_FILES", "SEALED", "Update", "check_finite", "consistent", "digest",
    "forget", "read_manifest", "run_lock", "settle", "update", "verify", "version", "write_file", "write_json",
]
_warned: set[Path] = set()
T = TypeVar("T")


def write_file(run_dir: str | Path, name: str, write: Callable[[Path], object], fsync: bool = True) -> None:
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
        sealed = read_json(run_dir / CONFIG).get(SEALED) is True
    except (OSError, ValueError, AttributeError):  # config.json's own reader says what is wrong with it
        return
    if sealed:
        manifest = run_dir / MANIFEST
        raise CheckpointError(f"{manifest} {'is not a file' if manifest.exists() else 'is missing'}, but "
                              f"{run_dir / CONFIG} records that the run was written with one: the run was "
                              f"damaged or edited, and its files cannot be checked. Fix: restore the run (or its "
                              f"{MANIFEST}) from a backup, or retrain it")
