"""Reads with a deadline on one timer per connection: data before the
deadline is read, a read still waiting at it is a TimeoutError that leaves
later data in the reader, deadlines that move later keep the same timer,
and a cancellation from elsewhere stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.api.server.deadline import ReadDeadline


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_data_before_the_deadline_is_read():
    async def main() -> bytes:
        r = asyncio.StreamReader()
        d = ReadDeadline()
        asyncio.get_running_loop().call_later(0.02, r.feed_data, b"GET /")
        try:
            return await d.read(r, 100, 1.0)
        finally:
            d.close()

    assert run(main()) == b"GET /"


def test_a_read_waiting_at_its_deadline_times_out_and_loses_nothing():
    async def main() -> None:
        r = asyncio.StreamReader()
        d = ReadDeadline()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await d.read(r, 100, 0.05)
        assert 0.04 <= loop.time() - t0 < 1
        r.feed_data(b"late")
        assert await d.read(r, 100, 1.0) == b"late"   # still there, and readable
        assert asyncio.current_task().cancelling() == 0
        d.close()

    run(main())


def test_deadlines_that_move_later_keep_one_timer():
    async def main() -> None:
        r = asyncio.StreamReader()
        d = ReadDeadline()
        loop = asyncio.get_running_loop()
        made = []
        real = loop.call_at

        def counting(when, cb, *args, **kw):  # type: ignore[no-untyped-def]
            made.append(when)
            return real(when, cb, *args, **kw)

        loop.call_at = counting  # type: ignore[method-assign]
        try:
            for i in range(50):
                loop.call_soon(r.feed_data, b"x")
                assert await d.read(r, 1, 0.2) == b"x"
            assert len(made) == 1
            # the first deadline passes while no read waits: nothing happens,
            # and the next read still gets its full time
            await asyncio.sleep(0.25)
            loop.call_later(0.05, r.feed_data, b"y")
            assert await d.read(r, 1, 0.2) == b"y"
            # a shorter deadline than the timer's takes a new timer
            with pytest.raises(TimeoutError):
                await d.read(r, 1, 0.01)
        finally:
            loop.call_at = real  # type: ignore[method-assign]
            d.close()

    run(main())


def test_a_cancellation_from_elsewhere_stays_one():
    async def main() -> None:
        r = asyncio.StreamReader()
        d = ReadDeadline()
        task = asyncio.create_task(d.read(r, 100, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # both at once: the deadline passes and the task is cancelled too
        task = asyncio.create_task(d.read(r, 100, 0.02))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.02, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        d.close()

    run(main())
