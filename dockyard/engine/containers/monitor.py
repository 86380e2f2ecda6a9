"""`ExitMonitor`: one task per running container that waits for its exit,
and the clients waiting for an exit or a removal.

conmon owns each container's stdio and exit code; the task waits on
conmon's pidfd, keeps the container's log pump going meanwhile, reads the
exit code and the OOM verdict conmon left, and hands them to the
lifecycle's exit handler.  After a daemon restart the same tasks are
rebuilt from the records, so containers never notice the daemon went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dockyard.engine.containers.record import Container
from dockyard.engine.logs.service import LogService
from dockyard.errors import DockyardError
from dockyard.runtime import conmon

log = logging.getLogger("dockyard.monitor")


@dataclass(frozen=True)
class Exit:
    code: int
    oom_killed: bool
    finished_ns: int


ExitHandler = Callable[[Container, Exit], Awaitable[None]]


def mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def recorded_exit(mon: conmon.MonitoredContainer) -> Exit:
    """What conmon recorded for a container that ended while nobody watched."""
    layout = mon.layout
    code = conmon.read_exit_code(mon.exit_file)
    if code is None:
        code = conmon.read_exit_code(layout.persist_exit_file)
    return Exit(255 if code is None else code, conmon.oom_killed(layout),
                mtime_ns(mon.exit_file) or time.time_ns())


class ExitMonitor:
    def __init__(self, logs: LogService) -> None:
        self.logs = logs
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future[None]]] = {}
        # containers whose exit is being handled: no longer running, but
        # their run's host resources are not given back yet
        self._settling: set[str] = set()

    def watch(self, c: Container, mon: conmon.MonitoredContainer, on_exit: ExitHandler) -> None:
        self.logs.start_pump(c)
        self._tasks[c.id] = asyncio.create_task(self._wait(c, mon, on_exit))

    def forget(self, c: Container) -> None:
        """The exit handler has begun: the task is done, the run's
        resources are being released until `exited`."""
        self._tasks.pop(c.id, None)
        self._settling.add(c.id)

    async def settled(self, c: Container) -> None:
        """Return once the last run's exit has been fully handled, so a new
        run never meets the endpoints, mounts or bundle of the old one."""
        if c.id in self._settling:
            await asyncio.shield(self.exit_future(c))

    def stop_all(self) -> None:
        """Daemon shutdown: containers keep running without us."""
        for t in list(self._tasks.values()):
            t.cancel()

    async def _wait(self, c: Container, mon: conmon.MonitoredContainer,
                    on_exit: ExitHandler) -> None:
        pumping = asyncio.create_task(self.logs.keep_pumping(c))
        try:
            code = await conmon.wait_for_exit(mon)
        except asyncio.CancelledError:
            pumping.cancel()
            raise
        except DockyardError as e:
            log.error("%s", e.message)
            code = 255
        pumping.cancel()
        await self.logs.final_pump(c)
        self.logs.drop_pump(c)
        await on_exit(c, Exit(code, conmon.oom_killed(mon.layout),
                              mtime_ns(mon.exit_file) or time.time_ns()))

    async def collect_exit(self, c: Container, mon: conmon.MonitoredContainer) -> Exit:
        """A container that ended while the daemon was down: convert the
        rest of its log, and read what conmon recorded."""
        if self.logs.start_pump(c) is not None:
            await self.logs.final_pump(c)
            self.logs.drop_pump(c)
        return recorded_exit(mon)

    # ------------------------------------------------------------ waiting
    def exit_future(self, c: Container) -> asyncio.Future[int]:
        """The exit code of the container's next exit (or its removal)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    def removed_future(self, c: Container) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._removed_waiters.setdefault(c.id, []).append(fut)
        return fut

    async def wait_exit(self, c: Container, timeout: float | None) -> bool:
        """True once the container is not running, False after `timeout`."""
        if not c.state.running and c.id not in self._settling:
            return True
        fut = self.exit_future(c)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False

    def exited(self, c: Container) -> None:
        self._settling.discard(c.id)
        for f in self._exit_waiters.pop(c.id, []):
            if not f.done():
                f.set_result(c.state.exit_code)

    def removed(self, c: Container) -> None:
        self.exited(c)
        for f in self._removed_waiters.pop(c.id, []):
            if not f.done():
                f.set_result(None)

