"""The loaded run behind the HTTP routes: one model, one model thread, batched inference and prompt-pool updates.

The run (model + calibration) is held as one immutable snapshot: a batch reads it once, and a prompt update builds
and persists the new run on disk (nipad.engine.prompts: under the run's writer lock, on top of the run as it is on
disk, as one all-or-nothing update) before swapping the snapshot in, so a failed update leaves both the served model
and the files as they were. The run's version on disk (nipad.runs.integrity.version) is checked before every batch
and class listing: when another process (`nipad prompt add`, `nipad calibrate`, another service) changed it, the
snapshot is loaded again first; if that load fails, the old snapshot serves on and the failure is logged. A batch
whose scores or maps are not finite fails (never a score) and marks the service broken (`problem`, which /health
reports) until a snapshot is loaded again.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nipad.engine.calibration import Calibration
from nipad.engine.distributed import pick_device
from nipad.engine.prompts import add_prompts
from nipad.errors import CheckpointError, NipadError
from nipad.families import load_run
from nipad.models.output import AnomalyModel
from nipad.runs import integrity
from nipad.runs.file_names import ALL
from nipad.runs.run_info import RunInfo
from nipad.serve.settings import ServeSettings

log = logging.getLogger("nipad.serve")

@dataclass(frozen=True)
class Snapshot:
    model: AnomalyModel
    info: RunInfo
    calibration: Calibration
    version: tuple[str | None, bool] = (None, False)  # the run's integrity.version when it was loaded


@dataclass(frozen=True)
class Scored:
    """One image's model output, with the calibration of the snapshot that scored it."""

    pred_score: float
    anomaly_map: np.ndarray  # float32 S x S
    prompt_class: str | None
    calibration: Calibration


def pool_classes(model: AnomalyModel) -> list[str]:
    """The classes of `model`'s prompt pool (none for a family without one)."""
    pool = model.prompt_pool
    return [] if pool is None else list(pool.class_names)


class BrokenModelError(CheckpointError):
    """The served model gave a NaN or infinite output: no score is given and /health reports it."""


class InspectionService:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        torch.set_num_threads(settings.threads)
        self.device = pick_device(settings.device)
        self.problem: str | None = None  # why the served model is broken (None: healthy)
        self._reloading = threading.Lock()
        self._failed: tuple[str | None, bool] | None = None  # a version on disk that could not be loaded
        self.snapshot = self._load()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="nipad-model")
        self.io_threads = ThreadPoolExecutor(settings.threads, thread_name_prefix="nipad-io")

    def _load(self) -> Snapshot:
        run_dir = self.settings.run_dir

        def load() -> Snapshot:
            model, info = load_run(run_dir, self.device)
            pool = pool_classes(model)
            calibration = Calibration.load(run_dir).with_manual(
                self.settings.thresholds, [*pool, *info.classes, *info.prompt_classes])
            return Snapshot(model, info, calibration, integrity.version(run_dir))

        return integrity.consistent(run_dir, load)  # model and thresholds of one version of the run

    def refresh(self) -> None:
        """Load the run again if another process changed it on disk since it was loaded (see the module doc)."""
        now = integrity.version(self.settings.run_dir)
        if now == self.snapshot.version or now == self._failed:
            return
        with self._reloading:
            if integrity.version(self.settings.run_dir) != self.snapshot.version:
                self._reload()

    def _reload(self) -> None:
        try:
            self.snapshot = self._load()
        except NipadError as err:
            self._failed = integrity.version(self.settings.run_dir)
            log.error("%s changed on disk and cannot be loaded (%s); still serving the run as loaded before",
                      self.settings.run_dir, err)
            return
        self._failed = None
        self.problem = None

    @property
    def image_size(self) -> int:
        return int(self.snapshot.model.config.image_size)

    @property
    def has_prompt_pool(self) -> bool:
        return self.snapshot.model.prompt_pool is not None

    def score(self, images: Sequence[np.ndarray]) -> list[Scored]:
        """Run the model on uint8 3 x S x S images (on the model thread, via the batcher)."""
        self.refresh()
        snap = self.snapshot
        batch = torch.from_numpy(np.stack(images)).to(self.device)
        with torch.inference_mode():
            out = snap.model(batch)
        scores = out["pred_score"].float().cpu().numpy()
        maps = out["anomaly_map"][:, 0].float().cpu().numpy()
        if not (np.isfinite(scores).all() and np.isfinite(maps).all()):
            self.problem = (f"the model of {self.settings.run_dir} gave NaN or infinite scores or maps: it is broken "
                            f"(retrain the run or restore it from a backup, then restart the service)")
            raise BrokenModelError(self.problem)
        classes = out.get("prompt_class") or [None] * len(images)
        return [Scored(float(scores[i]), maps[i], classes[i], snap.calibration) for i in range(len(images))]

    def known_classes(self) -> set[str]:
        self.refresh()
        snap = self.snapshot
        pool = pool_classes(snap.model)
        return set(pool) | set(snap.info.classes) | {c for c in snap.calibration.classes if c != ALL}

    def classes(self) -> list[dict[str, Any]]:
        self.refresh()
        snap = self.snapshot
        counts: dict[str, int] = {}
        pool = snap.model.prompt_pool
        if pool is not None:
            for name in pool.class_of(torch.arange(len(pool))):
                counts[name] = counts.get(name, 0) + 1
        out = []
        for name in sorted(self.known_classes()):
            t = snap.calibration.classes.get(name)
            out.append({"name": name, "prompts": counts.get(name, 0), "calibrated": t is not None,
                        "image_threshold": t.image_threshold if t else None,
                        "image_threshold_method": t.method if t else None,
                        "calibration_images": t.n_images if t else None})
        return out

    def add_prompts(self, class_name: str, files: Sequence[tuple[str, bytes]], n_prompts: int,
                    rate: float | None) -> dict[str, Any]:
        """`nipad prompt add` on uploaded (already checked) images, on top of the run as it is on disk (which may
        have changed since it was loaded), then serve the updated run."""
        with tempfile.TemporaryDirectory(prefix="nipad-prompts-") as tmp:
            paths = []
            for i, (_, data) in enumerate(files):
                path = Path(tmp) / f"{i:04d}.img"
                path.write_bytes(data)
                paths.append(path)
            done = add_prompts(self.settings.run_dir, class_name, paths, n_prompts, rate, str(self.device),
                               self.settings.max_pixels)
        with self._reloading:  # checked again: NaN weights or a changed file fail here, the old snapshot serves on
            self.snapshot = self._load()
            self._failed = None
            self.problem = None
        return done

    def close(self) -> None:
        self.model_thread.shutdown(wait=False, cancel_futures=True)
        self.io_threads.shutdown(wait=False, cancel_futures=True)
