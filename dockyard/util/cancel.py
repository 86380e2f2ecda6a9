"""Cancelling blocking work that runs in a worker thread.

`asyncio.to_thread` cannot stop its thread: a cancelled task returns at
once while the worker goes on (unpacking a layer, registering the image)
and, worse, whatever lock the task held is released under it.  Work that
may be cancelled (its client went away, the daemon stops) takes a
`CancelToken` instead and calls `check()` between steps; `run_in_thread`
sets the token when its task is cancelled and waits for the worker to stop
at its next check and undo what it made, then lets the cancellation go on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised by `CancelToken.check` in the worker once the work is cancelled."""

    def __init__(self) -> None:
        super().__init__("operation cancelled")


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def check(token: CancelToken | None) -> None:
    """`token.check()` for an optional token."""
    if token is not None:
        token.check()


async def wait_until_done(fut: asyncio.Future[Any]) -> None:
    """Wait for `fut` even through further cancellations (a worker thread
    that must be let finish); its outcome is left to the caller."""
    while not fut.done():
        try:
            await asyncio.wait({fut})
        except asyncio.CancelledError:
            continue
    if not fut.cancelled():
        fut.exception()             # retrieved: never "exception was never retrieved"


async def run_in_thread(fn: Callable[..., T], *args: Any, token: CancelToken | None = None
                        ) -> T:
    """`fn(*args, token)` in a worker thread, cancellable through the token."""
    token = token or CancelToken()
    fut = asyncio.ensure_future(asyncio.to_thread(fn, *args, token))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        token.cancel()
        await wait_until_done(fut)
        raise
