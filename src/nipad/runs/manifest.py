"""The manifest of a run directory: the sha256 and size of every file nipad reads back, recorded when it is written.

    RUN_DIR/manifest.json  {"format": "nipad-manifest/1", "algorithm": "sha256",
                            "files": {"model.safetensors": {"sha256": ..., "bytes": ...}, "config.json": ..., ...}}

An entry may carry "previous": the file's old hash, listed by nipad versions that renamed files before journalling
updates. nipad.runs.journal writes the manifest as part of each update; nipad.runs.integrity checks files against it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nipad.errors import CheckpointError
from nipad.runs.file_names import MANIFEST, RUN_FILES
from nipad.utils.io import read_json

FORMAT = "nipad-manifest/1"
SEALED = "sealed"  # config.json's key (True) for a run written with a manifest: one that lost it is refused


def digest(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def entry(path: Path) -> dict[str, Any]:
    """A file's manifest entry: its sha256 and size."""
    return {"sha256": digest(path), "bytes": path.stat().st_size}


def read_manifest(run_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """The recorded files of a run ({name: {"sha256", "bytes"[, "previous"]}}), or None for a run without one."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return parse_files(read_json(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}): the run's files cannot be checked. Fix: restore the run "
                              f"from a backup or retrain it") from err


def parse_files(data: Any) -> dict[str, dict[str, Any]]:
    """The "files" of manifest contents `data`; ValueError (or KeyError, TypeError) if they are not a manifest."""
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
    files = {str(k): dict(v) for k, v in data["files"].items()}
    for name, recorded in files.items():
        for e in (recorded, *([recorded["previous"]] if "previous" in recorded else [])):
            if not (isinstance(e["sha256"], str) and type(e["bytes"]) is int and e["bytes"] >= 0):
                raise ValueError(f"the entry of {name} is not a sha256 and a byte count: {str(e)[:80]}")
    return files


def manifest_data(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """manifest.json's contents for the entries `files`."""
    return {"format": FORMAT, "algorithm": "sha256", "files": files}


def current_files(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest to update; for a run without one, the hashes of its files as they are now."""
    files = read_manifest(run_dir)
    if files is None:
        files = {name: entry(run_dir / name) for name in RUN_FILES if (run_dir / name).is_file()}
    return files


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """CheckpointError if any floating-point tensor holds NaN or infinity: such a model gives no usable score."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite values in {len(bad)} tensor(s) ({', '.join(bad[:3])}): "
                              f"the model is broken (training diverged, or the file was edited) and its scores "
                              f"would mean nothing. Fix: retrain (a lower --lr) or restore the run from a backup")
