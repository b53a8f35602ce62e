"""Progress of a long stage: a tqdm bar on a terminal, one plain line per stage anywhere else.

A tqdm bar redraws itself with carriage returns, which fill a piped log or a CI transcript with hundreds of
partial lines. `progress` shows the bar only when its stream (stderr by default) is a terminal; otherwise it counts
quietly and, when the stage ends, writes one line: "nipad: testing: 12 batches done in 3.4 s". Every bar in nipad
is made here.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")

PLURALS = {"img": "images", "batch": "batches", "it": "steps"}


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether `stream` is an interactive terminal (False for pipes, files, closed or odd streams)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class StageLine(Generic[T]):
    """What `progress` gives off a terminal: tqdm's calls (iteration, update, set_postfix, close, `with`), and one
    line on `stream` when the stage ends (when iteration ends or on close; nothing after an exception)."""

    def __init__(self, iterable: Iterable[T] | None, total: int | None, desc: str, unit: str, stream: IO[str] | None,
                 quiet: bool) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.stream, self.quiet = stream, quiet
        self.n = 0
        self.started = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress() was given no iterable to iterate over")
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __len__(self) -> int:
        return len(self.iterable) if self.iterable is not None else int(self.total or 0)  # type: ignore[arg-type]

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored: a stage's figures belong in its own log line."""

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def line(self) -> str:
        unit = PLURALS.get(self.unit, self.unit) if self.n != 1 else self.unit.replace("img", "image")
        count = f"{self.n} of {self.total}" if self.total is not None and self.n < self.total else str(self.n)
        return f"nipad: {self.desc}: {count} {unit} done in {time.perf_counter() - self.started:.1f} s"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.quiet and self.stream is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed or broken log stream never stops the work
                print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> StageLine[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.closed = True


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str, unit: str = "it",
             enabled: bool = True, line: bool = True, stream: IO[str] | None = None) -> Any:
    """A progress bar over `iterable` (or, without one, advanced by `.update(n)` up to `total`) named `desc`:
    tqdm when `stream` (default: sys.stderr) is a terminal, else a `StageLine` writing one line when the stage
    ends. `enabled=False` shows nothing (e.g. processes other than the main one); `line=False` skips the closing
    line (where the caller logs its own line for the stage, as training does per epoch)."""
    stream = sys.stderr if stream is None else stream
    if enabled and is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=stream)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return StageLine(iterable, total, desc, unit, stream, quiet=not (enabled and line))
