"""Integrity of a run directory: a sha256 of every file nipad reads back, written at save time, checked at load.

    RUN_DIR/manifest.json  {"format": "nipad-manifest/1", "algorithm": "sha256",
                            "files": {"model.safetensors": {"sha256": ..., "bytes": ...}, "config.json": ..., ...}}

Every family (OneNIP/UniAD, PatchCore/PaDiM, AnomalySD) writes its run files through `write_file` / `write_json`
and its loaders call `verify` on each file before reading it, so a flipped bit, a truncated copy or an edited file
is a CheckpointError naming the file, never a silent wrong score. Writes are two-phase so that an interruption at
any point leaves a manifest that accepts what is on disk: the manifest first lists the new hash beside the one of
the file being replaced, the file is renamed into place, then the old hash is dropped.

A run written before manifests existed loads with a warning (nothing to check against); the first file nipad
writes into it records the hashes of all its files as they are. `check_finite` refuses NaN or infinite weights,
which a hash cannot catch (a diverged training writes them faithfully).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from nipad.errors import CheckpointError
from nipad.utils.io import atomic_write, atomic_write_json

MANIFEST = "manifest.json"
FORMAT = "nipad-manifest/1"
# the files of a run that nipad reads back (metrics.json and report.html are outputs, never read)
RUN_FILES = ("config.json", "model.safetensors", "calibration.json", "train_state.pt", "trained_images.json")
_warned: set[Path] = set()


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
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        files = {str(k): dict(v) for k, v in data["files"].items()}
        for entry in files.values():
            str(entry["sha256"]), int(entry["bytes"])
        return files
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}): the run's files cannot be checked. Fix: restore the run "
                              f"from a backup or retrain it") from err


def _save_manifest(run_dir: Path, files: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(run_dir / MANIFEST, {"format": FORMAT, "algorithm": "sha256", "files": files})


def _current(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest to update; for a run without one, the hashes of its files as they are now."""
    files = read_manifest(run_dir)
    if files is None:
        files = {name: _entry(run_dir / name) for name in RUN_FILES if (run_dir / name).is_file()}
    return files


def write_file(run_dir: str | Path, name: str, write: Callable[[Path], None], fsync: bool = True) -> None:
    """Write RUN_DIR/name atomically with `write(tmp_path)` and record its hash in the manifest (two-phase)."""
    run_dir = Path(run_dir)
    staged: dict[str, Any] = {}

    def write_and_stage(tmp: Path) -> None:
        write(tmp)
        files = _current(run_dir)
        old = files.get(name)
        staged.update(files=files, old=old)
        files[name] = {**_entry(tmp), **({"previous": _without_previous(old)} if old else {})}
        _save_manifest(run_dir, files)

    try:
        atomic_write(run_dir / name, write_and_stage, fsync)
    except BaseException:
        if "files" in staged:  # the manifest already lists the new file, which never arrived: list the old again
            files = staged["files"]
            if staged["old"] is None:
                files.pop(name, None)
            else:
                files[name] = _without_previous(staged["old"])
            _save_manifest(run_dir, files)
        raise
    files = staged["files"]
    files[name] = _without_previous(files[name])
    _save_manifest(run_dir, files)


def _without_previous(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "previous"}


def write_json(run_dir: str | Path, name: str, data: Any) -> None:
    """RUN_DIR/name as indented JSON, atomically, with its hash recorded."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    write_file(run_dir, name, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def forget(run_dir: str | Path, name: str) -> None:
    """Delete RUN_DIR/name (if there) and its manifest entry."""
    run_dir = Path(run_dir)
    files = _current(run_dir)
    (run_dir / name).unlink(missing_ok=True)
    if files.pop(name, None) is not None or not (run_dir / MANIFEST).is_file():
        _save_manifest(run_dir, files)


def verify(run_dir: str | Path, name: str) -> None:
    """CheckpointError unless RUN_DIR/name has the content nipad recorded for it; a missing file passes (its
    reader says it is missing); a run without manifest passes with a warning."""
    run_dir = Path(run_dir)
    path = run_dir / name
    files = read_manifest(run_dir)
    if files is None:
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


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """CheckpointError if any floating-point tensor holds NaN or infinity: such a model gives no usable score."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite values in {len(bad)} tensor(s) ({', '.join(bad[:3])}): "
                              f"the model is broken (training diverged, or the file was edited) and its scores "
                              f"would mean nothing. Fix: retrain (a lower --lr) or restore the run from a backup")
