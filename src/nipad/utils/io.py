"""Atomic file writes: a crash or Ctrl-C mid-write never leaves a half-written file under the final name."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nipad.errors import OutputError


def _umask() -> int:
    """The process's umask, read once at import (os.umask can only read it by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# What open() would give a new file: mkstemp's temporary files are 0600 whatever the umask.
FILE_MODE = 0o666 & ~_umask()


def make_dir(path: str | Path) -> Path:
    """Create the folder `path` (and its parents) if needed; OutputError naming it if that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder {path}: {err.strerror or err}. Fix: choose an output place "
                          f"you can write to") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {path}: permission denied. Fix: choose an output place you can write to")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], object], fsync: bool = True) -> None:
    """Call `write(tmp_path)` on a temporary file in the same folder, fsync it (unless told not to: caches), then
    rename it onto `path`. An OSError (no such folder, no permission, disk full) becomes an OutputError naming
    `path`."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}. Fix: {write_fix(path, err)}") from err
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}. Fix: {write_fix(path, err)}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_fix(path: Path, err: OSError) -> str:
    """The fix for a failed write of `path`: free disk space only when the disk is full (ENOSPC, EDQUOT)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space and rerun"
    if err.errno == errno.EISDIR:
        return f"{path} is a folder: give a file name (or remove the folder)"
    return "choose an output place you can write to"


def check_writable(folder: str | Path) -> Path:
    """Write (then delete) a file in `folder`, creating it for the check, so that a read-only folder or file system is
    an OutputError naming it before any work is done (os.access alone passes for root, and on some mounts). Folders
    the check created are removed again: a command refused later leaves nothing behind."""
    folder = Path(folder)
    created = next((p for p in [*reversed(folder.absolute().parents), folder.absolute()] if not p.exists()), None)
    try:
        make_dir(folder)
        fd, probe = tempfile.mkstemp(prefix=".nipad-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise OutputError(f"cannot write into {folder}: {err.strerror or err}. Fix: "
                          f"{'free disk space and rerun' if full else 'choose an output place you can write to'}"
                          ) from err
    finally:
        if created is not None and created.is_dir():
            shutil.rmtree(created, ignore_errors=True)
    return folder


def read_json(path: str | Path) -> Any:
    """The JSON in `path`; json.JSONDecodeError (a ValueError) also for JSON nested too deeply to parse (a
    RecursionError otherwise), so that every reader reports the file as corrupt."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError as err:
        raise json.JSONDecodeError("nested too deeply", "", 0) from err


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
