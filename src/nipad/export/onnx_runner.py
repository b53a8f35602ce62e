"""An exported model run by onnxruntime, answering the same call as `Detector` without PyTorch's model code.

`OnnxDetector(path)(images)` takes uint8 RGB images (B, 3, H, W) as a numpy array or a torch tensor and returns
`pred_score` (B,), `anomaly_map` (B, 1, S, S), `prompt_class` (list, None without prompts) and `prompt_index`, as
arrays of the same kind as the input, so `nipad predict --onnx` reuses the PyTorch path unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from nipad.engine.calibration import Calibration
from nipad.errors import ConfigError
from nipad.export.sidecar import INPUT, SEAL_KEY, read_sidecar, sealed_digest, sidecar_path


def session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU onnxruntime session on `path`, with `threads` intra-op threads (None: onnxruntime's default)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable or invalid models
        raise ConfigError(f"cannot load ONNX model {path}: {err}. Fix: export the run again") from err


@dataclass(frozen=True)
class OnnxConfig:
    """The part of ModelConfig that callers of a detector read."""

    model: str
    image_size: int


class OnnxDetector:
    """An exported nipad model (path to the .onnx; its sidecar JSON must lie next to it). `thresholds`: image
    thresholds set by hand over the sidecar's calibrated ones, as `nipad predict --threshold` takes them ("T" for
    every class, "CLASS=T" for one; ConfigError on a non-finite value or an unknown class)."""

    def __init__(self, path: str | Path, threads: int | None = None, thresholds: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.thresholds = list(thresholds or [])
        self.meta = read_sidecar(path)
        recorded = self.meta.get("onnx_sha256")  # absent in exports made before nipad recorded it
        if recorded is not None:
            with open(path, "rb") as fh:
                found = hashlib.file_digest(fh, "sha256").hexdigest()
            if found != recorded:
                raise ConfigError(f"{path} is corrupt: its sha256 is not the one recorded in {sidecar_path(path)} at "
                                  f"export; the file was damaged or replaced. Fix: export the run again")
        self.session = session(path, threads)
        sealed = self.session.get_modelmeta().custom_metadata_map.get(SEAL_KEY)  # absent in older exports
        if sealed is not None and sealed != sealed_digest(self.meta):
            raise ConfigError(f"{sidecar_path(path)} was changed after export: its thresholds, classes or image size "
                              f"are not those whose sha256 {path} records. Fix: export the run again (or set a "
                              f"threshold by hand with --threshold)")
        self.config = OnnxConfig(str(self.meta.get("model")), self.meta["image_size"])
        self.prompt_classes: list[str] = self.meta["prompt_classes"]
        if self.thresholds and self.calibration is None:
            raise ConfigError(f"{path} was exported without thresholds, so --threshold has none to replace. Fix: "
                              f"calibrate the run (`nipad calibrate`) and export it again")

    @property
    def calibration(self) -> Calibration | None:
        data = self.meta.get("calibration")
        try:
            calibration = Calibration.from_dict(data) if data else None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"the calibration in {sidecar_path(self.path)} is corrupt ({err}); export the run "
                              f"again") from err
        return calibration.with_manual(self.thresholds, self.prompt_classes) if calibration else None

    def __call__(self, images: Any) -> dict[str, Any]:
        as_torch = not isinstance(images, np.ndarray)
        array = np.ascontiguousarray(images.detach().cpu().numpy() if as_torch else images)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != 3:
            raise ConfigError(f"expected uint8 RGB images (batch, 3, height, width), got {array.dtype} "
                              f"{tuple(array.shape)}")
        score, anomaly_map, index = self.session.run(None, {INPUT: array})
        classes = [self.prompt_classes[i] if i >= 0 else None for i in index.tolist()] if self.prompt_classes else None
        out = {"pred_score": score, "anomaly_map": anomaly_map, "prompt_index": index}
        if as_torch:
            import torch

            out = {k: torch.from_numpy(v) for k, v in out.items()}
        return {**out, "prompt_class": classes}
