"""Typed training settings; saved in the run directory next to the model settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nipad.errors import ConfigError
from nipad.models.names import SEED
from nipad.settings_base import Settings


def check_rate(rate: float | None, flag: str = "--false-alarm-rate") -> float | None:
    """`rate` unless it is outside (0, 1) (NaN included): ConfigError naming `flag` and the range. None passes (the
    default of the caller applies); 0 is refused, never read as "unset"."""
    if rate is not None and not 0.0 < rate < 1.0:
        raise ConfigError(f"{flag} must be between 0 and 1, both excluded (the share of normal images flagged, e.g. "
                          f"0.01 for 1%), got {rate}")
    return rate


@dataclass(frozen=True)
class TrainConfig(Settings):
    """How a OneNIP / UniAD model trains; the defaults are the authors' schedule (AdamW, lr x0.1 at 80% of the epochs).

    `warmup_steps`: linear lr warmup steps; `max_steps` > 0: fewer epochs where `epochs` would take more optimiser
    steps than this (`step_budget`); `synthetic_pool`: pseudo-anomaly variants made once per image (0: a fresh
    one every step); `calibration_fraction`: share of each class's normal training images held out to set the fusion
    and the thresholds at `false_alarm_rate`; `prompt_neighbours`: train with one of the k most similar images as the
    prompt (0: a random one); `prompts_per_class`: the test-time prompt pool per class; `amp`: bfloat16 autocast where
    the device runs it natively (nipad.engine.distributed.native_bf16). Why each is so: docs/decisions.md.
    """

    settings_name = "training"
    epochs: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    clip_grad: float = 0.1
    lr_drop_at: float = 0.8
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    max_steps: int = 0
    seed: int = SEED
    prompt_neighbours: int = 0
    prompts_per_class: int = 1
    synthetic_pool: int = 0
    calibration_fraction: float = 0.1
    false_alarm_rate: float = 0.01
    texture_dir: str | None = None
    shots: int | None = None
    max_train_per_class: int | None = None
    workers: int = 0
    amp: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be 0 or more, got {self.weight_decay}")
        if self.workers < 0 or self.seed < 0:
            raise ConfigError(f"--workers and --seed must be 0 or more, got {self.workers} and {self.seed}")
        if self.warmup_steps < 0:
            raise ConfigError(f"--warmup-steps must be 0 or more, got {self.warmup_steps}")
        if self.max_steps < 0:
            raise ConfigError(f"--max-steps must be 0 or more, got {self.max_steps}")
        if self.prompt_neighbours < 0 or self.prompts_per_class < 1:
            raise ConfigError(f"--prompt-neighbours must be 0 or more and --prompts-per-class at least 1, got "
                              f"{self.prompt_neighbours} and {self.prompts_per_class}")
        if self.synthetic_pool < 0:
            raise ConfigError(f"--synthetic-pool must be 0 (a fresh pseudo anomaly every step) or more, got "
                              f"{self.synthetic_pool}")
        check_rate(self.false_alarm_rate)
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ConfigError(f"calibration fraction must be in [0, 1), got {self.calibration_fraction}")


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": 1000, "batch_size": 8, "synthetic_pool": 0},
    "cpu": {"epochs": 30, "batch_size": 8, "lr": 1e-3, "warmup_steps": 300, "synthetic_pool": 4},
    "nipad": {"epochs": 30, "batch_size": 8, "lr": 1e-3, "warmup_steps": 300, "synthetic_pool": 4,
              "prompts_per_class": 16, "max_steps": 3200},
}
"""The CPU presets train 30 epochs at lr 1e-3 after a 300-step warmup: a short schedule the refiner still learns in.
The nipad preset stops at about 3200 steps, what its 30 epochs take on bottle + magnetic_tile where they were chosen,
so a large data set still trains in the time a user can wait (the measurements: docs/decisions.md)."""


def train_preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset with the given settings over it; `epochs` given means those epochs (no step budget) unless
    `max_steps` is given too."""
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    if overrides.get("epochs") is not None and overrides.get("max_steps") is None:
        overrides["max_steps"] = 0
    return TrainConfig(**TRAIN_PRESETS[name]).with_overrides(**overrides)


def step_budget(config: TrainConfig, n_images: int, world_size: int = 1) -> TrainConfig:
    """`config` with the fewest epochs of `n_images` (shared by `world_size` processes) that reach `max_steps`
    optimiser steps, at most `epochs`; unchanged without a budget."""
    steps_per_epoch = math.ceil(math.ceil(n_images / world_size) / config.batch_size)
    if config.max_steps <= 0 or config.epochs * steps_per_epoch <= config.max_steps:
        return config
    return config.with_overrides(epochs=max(1, math.ceil(config.max_steps / steps_per_epoch)))


def lr_factor(step: int, warmup: int, drop: int, gamma: float) -> float:
    """The lr multiplier at optimiser step `step`: linear warmup over the first `warmup` steps, then x`gamma` from
    step `drop` on (the authors' single drop)."""
    return min(1.0, (step + 1) / warmup if warmup > 0 else 1.0) * (gamma if step >= drop else 1.0)


def schedule_steps(config: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(warmup steps, step of the lr drop): the warmup takes at most a tenth of the schedule, so a short one is not
    all warmup; the drop comes at the start of epoch int(lr_drop_at * epochs)."""
    warmup = min(config.warmup_steps, config.epochs * steps_per_epoch // 10)
    return warmup, max(1, int(config.lr_drop_at * config.epochs)) * steps_per_epoch
