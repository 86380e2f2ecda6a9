"""Reads with a deadline, on one timer per connection.

`asyncio.timeout` around every read makes a timer and takes it out again
for each request: on a kept-alive connection that is a tenth of the event
loop's work for a small answer.  A connection's deadlines mostly move later
(each request starts a new idle period), so one timer is kept: when it
fires before the current deadline it is set again for that deadline, and
only a read still waiting at its deadline is cancelled, which the read
turns into TimeoutError as `asyncio.timeout` would (also when the task was
cancelled for another reason at the same time: that cancellation wins).
"""

from __future__ import annotations

import asyncio


class ReadDeadline:
    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline: float | None = None     # of the read waiting now
        self._task: asyncio.Task[object] | None = None
        self._expired = False

    async def read(self, reader: asyncio.StreamReader, size: int, timeout: float) -> bytes:
        """`reader.read(size)`, or TimeoutError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        deadline = loop.time() + timeout
        self._deadline, self._task, self._expired = deadline, task, False
        if self._timer is None or self._timer_at > deadline:
            self._schedule(loop, deadline)
        cancelling = task.cancelling()
        try:
            return await reader.read(size)
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._deadline = self._task = None
            self._expired = False

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire, loop)
        self._timer_at = when

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._deadline is None or self._task is None:
            return                               # no read waiting: the next one sets it
        if loop.time() < self._deadline:
            self._schedule(loop, self._deadline)  # moved on since: wait for it
            return
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
