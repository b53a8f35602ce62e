"""What `nipad serve` is told: the run, the batching, the CPU threads and the limits on requests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from nipad.errors import ConfigError


@dataclass(frozen=True)
class ServeSettings:
    """`max_side` / `max_pixels` bound an image's dimensions and `max_request_pixels` the sum over a request's
    images, all read from the headers before any decoding; `request_timeout_s` bounds a request's wall time.
    `write_token` is the credential every state-changing endpoint asks for (None: those endpoints are off).
    `thresholds` replace the calibrated image thresholds (Calibration.with_manual), also after a prompt update."""

    run_dir: Path
    device: str | None = None
    max_batch: int = 8
    max_wait_ms: float = 10.0
    threads: int = 2
    max_files: int = 16
    max_file_bytes: int = 32 * 2**20
    max_side: int = 8192
    max_pixels: int = 40_000_000
    max_request_pixels: int = 40_000_000
    request_timeout_s: float = 60.0
    write_token: str | None = field(default=None, repr=False)
    thresholds: tuple[str, ...] = ()  # `--threshold` values ("T" or "CLASS=T"): image thresholds set by hand

    def __post_init__(self) -> None:
        for name in ("max_batch", "threads", "max_files", "max_file_bytes", "max_side", "max_pixels",
                     "max_request_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ConfigError(f"--max-wait-ms must be a number of milliseconds, 0 or more, got {self.max_wait_ms}")
        if self.write_token is not None and len(self.write_token) < 16:
            raise ConfigError("the write token must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        if not self.request_timeout_s > 0:
            raise ConfigError(f"--request-timeout must be > 0 seconds, got {self.request_timeout_s}")
        if self.max_wait_ms >= 1000 * self.request_timeout_s:
            raise ConfigError(f"--max-wait-ms {self.max_wait_ms:g} is not shorter than --request-timeout "
                              f"{self.request_timeout_s:g} s, so a request that waits for a batch to fill would time "
                              f"out (504). Fix: a --max-wait-ms of a few milliseconds (default 10)")

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted: every file at its limit plus 1 MiB of form overhead."""
        return self.max_files * self.max_file_bytes + 2**20
