"""Names shared by the ONNX exporter and its runner, and the sidecar JSON reader (no PyTorch needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nipad.errors import ConfigError
from nipad.utils.io import read_json

FORMAT = "nipad-onnx/1"
INPUT = "images"
OUTPUTS = ("pred_score", "anomaly_map", "prompt_index")


SEAL_KEY = "nipad_sidecar_sha256"
SEALED = ("model", "image_size", "prompt_classes", "calibration")
"""What the graph's own metadata (`SEAL_KEY`, covered by the .onnx file's sha256) records a hash of: what the
sidecar says about the graph's outputs, the thresholds included."""


def sealed_digest(meta: dict[str, Any]) -> str:
    """sha256 of the sidecar's `SEALED` entries, as canonical JSON (keys sorted, no spaces)."""
    text = json.dumps({key: meta.get(key) for key in SEALED}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sidecar_path(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: str | Path) -> dict[str, Any]:
    """The sidecar of an exported model, validated; ConfigError naming the file and the fix otherwise."""
    path = sidecar_path(onnx_path)
    if not Path(onnx_path).is_file():
        raise ConfigError(f"{onnx_path} does not exist; make it with `nipad export RUN_DIR --format onnx --out "
                          f"{onnx_path}`")
    if not path.is_file():
        raise ConfigError(f"{path} is missing: `nipad export` writes it next to {onnx_path}; keep both files")
    try:
        data = read_json(path)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        data["image_size"] = int(data["image_size"])
        data["prompt_classes"] = [str(c) for c in data["prompt_classes"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path} is corrupt or not a nipad export sidecar ({err}); export the run again") from err
    return data
