"""MicroBatcher: concurrent submissions share batches of at most max_batch, each caller gets its own result, and a
failing batch fails only its own callers."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from nipad.serve.batching import MicroBatcher


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_items_are_batched_and_answered_in_order():
    sizes = []

    def double(items):
        sizes.append(len(items))
        return [2 * x for x in items]

    async def main():
        batcher = MicroBatcher(double, ThreadPoolExecutor(1), max_batch=4, max_wait_s=0.05)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        finally:
            await batcher.stop()

    assert _run(main()) == [2 * i for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) == 3


def test_a_lone_item_waits_at_most_max_wait():
    async def main():
        batcher = MicroBatcher(lambda items: items, ThreadPoolExecutor(1), max_batch=8, max_wait_s=0.02)
        batcher.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            assert await batcher.submit("x") == "x"
        finally:
            await batcher.stop()
        return loop.time() - start

    assert _run(main()) < 1.0


def test_a_failing_batch_fails_only_its_callers():
    def fragile(items):
        if "bad" in items:
            raise ValueError("model failed")
        return items

    async def main():
        batcher = MicroBatcher(fragile, ThreadPoolExecutor(1), max_batch=2, max_wait_s=0.01)
        batcher.start()
        try:
            with pytest.raises(ValueError, match="model failed"):
                await batcher.submit("bad")
            return await batcher.submit("good")
        finally:
            await batcher.stop()

    assert _run(main()) == "good"


def test_a_wrong_number_of_results_is_an_error_not_a_hang():
    async def main():
        batcher = MicroBatcher(lambda items: [], ThreadPoolExecutor(1), max_batch=2, max_wait_s=0.01)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="0 results for 1"):
                await asyncio.wait_for(batcher.submit(1), 5)
        finally:
            await batcher.stop()

    _run(main())
