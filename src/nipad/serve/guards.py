"""What every request of `nipad serve` is held to besides its inputs: a deadline, its client still being there, and
the write token of the endpoints that change the model."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import Request

from nipad.serve.inputs import RequestError

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    """Return when the client has gone (call only after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of `work`, or RequestError 499 (and `work` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, gone):
            t.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise RequestError(499, "the client closed the connection: its work was cancelled")


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """RequestError 504 if the block runs longer than `seconds` (its awaits are cancelled)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as err:
        raise RequestError(504, f"the request took longer than {seconds:g} s and was cancelled: send fewer or smaller "
                                f"images per request") from err


def check_write_token(request: Request, token: str | None) -> None:
    """RequestError 403 when the service takes no writes, 401 unless the request carries the token as
    `Authorization: Bearer <token>`; compared in constant time, never logged. Checked before the body is read."""
    if token is None:
        raise RequestError(403, "this service takes no writes: start it with --token-file PATH (or the environment "
                                "variable NIPAD_SERVE_TOKEN) and send the token as 'Authorization: Bearer <token>'")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestError(401, "this endpoint changes the model: send the service's write token as "
                                "'Authorization: Bearer <token>'")
