"""Micro-batching: concurrent requests' images are run through the model together.

One asyncio task collects submitted items until `max_batch` are waiting or `max_wait` has passed since the first,
then runs `fn(items) -> results` on the model's single worker thread (so the model is never entered twice at
once) and hands each caller its own result. A failing batch fails only its own callers; the loop goes on.
Written here because the serving libraries batch only inside their own model servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any


class MicroBatcher:
    def __init__(self, fn: Callable[[Sequence[Any]], Sequence[Any]], executor: Executor, max_batch: int,
                 max_wait_s: float, on_batch: Callable[[int, float], None] | None = None) -> None:
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch  # called with (batch size, seconds in the model) after each batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def submit(self, item: Any) -> Any:
        """The result of `fn` for `item`, computed in a batch with whatever else is waiting."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        self._arrived.set()
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return [(item, fut) for item, fut in batch if not fut.done()]  # callers that gave up are dropped

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            start = loop.time()
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the model returned {len(results)} results for {len(batch)} inputs")
            except Exception as err:  # the model failed on this batch: its callers get it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
            if self.on_batch is not None:
                self.on_batch(len(batch), loop.time() - start)
