"""Shared timing helper of the benchmark scripts (run them as `python benchmarks/NAME.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable


def images_per_second(fn: Callable, images, batches: int) -> float:
    """Throughput of `fn(images)` over `batches` calls after one warm-up call."""
    fn(images)
    started = time.perf_counter()
    for _ in range(batches):
        fn(images)
    return batches * len(images) / (time.perf_counter() - started)
