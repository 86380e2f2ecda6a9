"""util/cancel: a cancelled task stops its worker thread and waits for it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dockyard.util.cancel import Cancelled, CancelToken, run_in_thread


def test_cancel_stops_the_worker_before_the_task_ends() -> None:
    events: list[str] = []
    started = threading.Event()

    def work(token: CancelToken) -> str:
        started.set()
        try:
            for _ in range(1000):
                token.check()
                time.sleep(0.005)
            return "finished"
        except Cancelled:
            time.sleep(0.05)            # undoing takes a while
            events.append("undone")
            raise

    async def main() -> None:
        task = asyncio.create_task(run_in_thread(work))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append("task ended")

    asyncio.run(main())
    assert events == ["undone", "task ended"]


def test_a_lock_is_held_until_the_worker_stopped() -> None:
    lock = asyncio.Lock()
    running = threading.Event()
    inside = []

    def work(token: CancelToken) -> None:
        running.set()
        inside.append("worker in")
        while True:
            try:
                token.check()
            except Cancelled:
                time.sleep(0.05)
                inside.append("worker out")
                raise
            time.sleep(0.002)

    async def holder() -> None:
        async with lock:
            await run_in_thread(work)

    async def main() -> None:
        task = asyncio.create_task(holder())
        while not running.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.sleep(0)
        async with lock:
            inside.append("next holder")
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert inside == ["worker in", "worker out", "next holder"]


def test_result_and_errors_pass_through() -> None:
    def ok(a: int, token: CancelToken) -> int:
        return a + 1

    def bad(token: CancelToken) -> None:
        raise ValueError("no")

    assert asyncio.run(run_in_thread(ok, 1)) == 2
    with pytest.raises(ValueError):
        asyncio.run(run_in_thread(bad))
