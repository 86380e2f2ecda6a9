"""Running containers: start, stop, kill, wait, pause, exit handling, restore.

Each running container has one conmon (which owns its stdio and exit code)
and, in this daemon, one monitor task that waits on conmon's pidfd.  After
a daemon restart the same tasks are rebuilt from the records and conmon's
files, so containers never notice the daemon went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

from dockyard.engine.record import Container
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotModified, SystemError_
from dockyard.oci.signals import check_kill_signal, parse_signal
from dockyard.runtime import commands as rtcmd
from dockyard.runtime import conmon
from dockyard.runtime.commands import ContainerCreateError, start_error_exit_code

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

log = logging.getLogger("dockyard.lifecycle")

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class Lifecycle:
    """Mixed into ContainerManager; split out only to keep files readable."""

    def __init__(self) -> None:
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[tuple[int, str]]]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._restart_timers: dict[str, asyncio.TimerHandle | asyncio.Task[None]] = {}
        self._attach_hooks: dict[str, list[Any]] = {}
        self._log_pumps: dict[str, Any] = {}
        self._conmon = conmon.ConmonSettings.detect(log_size_max=16 * 1024 * 1024)

    # ----------------------------------------------------------- set-up
    async def start_lifecycle(self: ContainerManager) -> None:  # type: ignore[misc]
        from dockyard.network.netns import prepare_netns_dir

        await asyncio.to_thread(prepare_netns_dir, self.netns_dir)

    async def stop_lifecycle(self: ContainerManager) -> None:  # type: ignore[misc]
        # Containers keep running without us (live restore); only our tasks stop.
        for t in list(self._monitors.values()):
            t.cancel()
        for t in list(self._restart_timers.values()):
            t.cancel()
        self.health_stop_all()
        for pump in list(self._log_pumps.values()):
            with contextlib.suppress(Exception):
                await pump.pump_once()

    def layout(self: ContainerManager, c: Container) -> conmon.ContainerLayout:  # type: ignore[misc]
        b = str(self.bundle(c))
        return conmon.ContainerLayout.in_bundle(b, log_path=str(self.conmon_log_path(c)))

    def runtime_for(self: ContainerManager, c: Container) -> Any:  # type: ignore[misc]
        return self.engine.runtimes.get(c.runtime)

    # ----------------------------------------------------------- start
    async def start(self: ContainerManager, ref: str) -> None:  # type: ignore[misc]
        c = self.get(ref)
        if c.state.status == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        if c.state.running:
            raise NotModified("container is already running")
        if c.state.removal:
            raise Conflict("container is marked for removal and cannot be started")
        self.cancel_restart(c)
        try:
            async with self.lock(c):
                if c.state.running:
                    raise NotModified("container is already running")
                c.state.manually_stopped = False
                self.restart_reset(c)
                await self._start_locked(c)
        except DockyardError as e:
            if not isinstance(e, NotModified) and c.host_config.get("AutoRemove"):
                # as dockerd: a --rm container that cannot start is removed
                with contextlib.suppress(DockyardError):
                    await self.destroy(c)
            raise

    async def _start_locked(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        from dockyard.engine.specbuild import prepare_rootfs_and_spec

        rt = self.runtime_for(c)
        layout = self.layout(c)
        try:
            # a foreign-architecture image nothing can run: say so, not ENOEXEC
            self.engine.emulation.check_can_run(self.engine.images.image_config(c.image_id))
            await prepare_rootfs_and_spec(self, c)
            io = conmon.ContainerIO(
                stdin=bool(c.config.get("OpenStdin")), tty=bool(c.config.get("Tty")),
                leave_stdin_open=not (c.config.get("StdinOnce") and not c.config.get("Tty")))
            mon = await conmon.create_container(rt, self._conmon, c.id, layout, io, name=c.name)
        except ContainerCreateError as e:
            msg = docker_start_error(e.message)
            await self._start_failed(c, msg, start_error_exit_code(msg))
            raise InvalidParameter(msg) from None
        except DockyardError as e:
            await self._start_failed(c, e.message, None)
            raise
        except OSError as e:
            await self._start_failed(c, str(e), None)
            raise SystemError_(str(e)) from None
        # Attach clients that came before start get the stream now, so the
        # first bytes the process writes are not lost.
        for hook in self._attach_hooks.pop(c.id, []):
            try:
                await hook(layout)
            except Exception:
                log.exception("attaching to %s failed", c.id[:12])
        try:
            await rtcmd.start(rt, c.id)
        except DockyardError as e:
            with contextlib.suppress(Exception):
                await rtcmd.delete(rt, c.id, force=True)
            await conmon.kill_conmon(mon.conmon_pid)
            await self._start_failed(c, e.message, start_error_exit_code(e.message))
            raise InvalidParameter(e.message) from None
        st = c.state
        st.status = "running"
        st.pid = mon.pid
        st.conmon_pid = mon.conmon_pid
        st.started_at = time.time_ns()
        st.finished_at = 0
        st.exit_code = 0
        st.error = ""
        st.oom_killed = False
        c.has_been_started = True
        if c.config.get("Healthcheck"):
            self.health_reset(c)
        self.save(c)
        self._watch(c, mon)
        self.emit(c, "start")

    async def _start_failed(self: ContainerManager, c: Container, message: str,  # type: ignore[misc]
                            code: int | None) -> None:
        c.state.error = message
        if code is not None:
            c.state.exit_code = code
        await self.release_runtime(c)
        self.save(c)
        for hook in self._attach_hooks.pop(c.id, []):
            with contextlib.suppress(Exception):
                await hook(None)

    def add_attach_hook(self: ContainerManager, c: Container, hook: Any) -> None:  # type: ignore[misc]
        self._attach_hooks.setdefault(c.id, []).append(hook)

    def remove_attach_hook(self: ContainerManager, c: Container, hook: Any) -> None:  # type: ignore[misc]
        with contextlib.suppress(ValueError):
            self._attach_hooks.get(c.id, []).remove(hook)

    # ----------------------------------------------------------- monitor
    def _watch(self: ContainerManager, c: Container, mon: conmon.MonitoredContainer) -> None:  # type: ignore[misc]
        self._start_log_pump(c)
        self._monitors[c.id] = asyncio.create_task(self._monitor(c, mon))

    def _start_log_pump(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        if (c.host_config.get("LogConfig") or {}).get("Type", "json-file") == "none":
            return
        from dockyard.engine.logs import LogPump

        opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
        from dockyard.engine.logs import parse_size

        max_size = parse_size(opts["max-size"]) if opts.get("max-size") else None
        max_file = int(opts.get("max-file", "1"))
        pump = LogPump(self.conmon_log_path(c), self.log_path(c), max_size, max_file)
        self._log_pumps[c.id] = pump

    async def _monitor(self: ContainerManager, c: Container,  # type: ignore[misc]
                       mon: conmon.MonitoredContainer) -> None:
        pump = self._log_pumps.get(c.id)
        pump_task = asyncio.create_task(_pump_loop(pump)) if pump else None
        try:
            code = await conmon.wait_for_exit(mon)
        except asyncio.CancelledError:
            if pump_task:
                pump_task.cancel()
            raise
        except DockyardError as e:
            log.error("%s", e.message)
            code = 255
        if pump_task:
            pump_task.cancel()
        if pump:
            with contextlib.suppress(Exception):
                await pump.pump_once(final=True)
        oom = conmon.oom_killed(mon.layout)
        finished = _mtime_ns(mon.exit_file) or time.time_ns()
        await self._on_exit(c, code, oom, finished)

    async def _on_exit(self: ContainerManager, c: Container, code: int, oom: bool,  # type: ignore[misc]
                       finished_ns: int) -> None:
        self._monitors.pop(c.id, None)
        self.health_stop(c)
        st = c.state
        st.exit_code = code
        st.oom_killed = oom
        st.finished_at = finished_ns
        st.pid = 0
        st.conmon_pid = 0
        st.status = "exited"
        if oom:
            self.emit(c, "oom")
        await self.release_runtime(c)
        duration = max(0, (finished_ns - st.started_at) // 1_000_000_000) if st.started_at else 0
        self.emit(c, "die", exitCode=str(code), execDuration=str(duration))
        restart = self.restart_decision(c)
        if restart is None:
            self.save(c)
        self._wake_exit_waiters(c)
        if restart is not None:
            self.schedule_restart(c, restart)
            return
        if c.host_config.get("AutoRemove"):
            with contextlib.suppress(DockyardError):
                await self.destroy(c)

    async def release_runtime(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        """Delete the runtime's container, unmount the rootfs, drop the bundle."""
        from dockyard.util.mount import umount

        with contextlib.suppress(Exception):
            await rtcmd.delete(self.runtime_for(c), c.id, force=True)
        self._log_pumps.pop(c.id, None)
        await asyncio.to_thread(umount, str(self.rootfs(c)))
        from dockyard.engine.specbuild import release_host_mounts

        await asyncio.to_thread(release_host_mounts, self, c)
        # a create that failed half way can leave the runtime's cgroup dirs
        from dockyard.runtime.runtimes import remove_empty_cgroup

        await asyncio.to_thread(remove_empty_cgroup,
                                f"{self.engine.config.cgroup_parent.rstrip('/')}/{c.id}")

    # ----------------------------------------------------------- restore
    async def restore_all(self: ContainerManager) -> None:  # type: ignore[misc]
        for c in list(self.by_id.values()):
            try:
                await self._restore(c)
            except Exception:
                log.exception("restoring container %s failed", c.id)
        await self.restart_on_daemon_start()

    async def _restore(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        st = c.state
        st.removal = False
        if st.status not in ("running", "paused", "restarting"):
            return
        layout = self.layout(c)
        mon = conmon.MonitoredContainer(c.id, st.pid, st.conmon_pid, layout, self.runtime_for(c))
        if st.status != "restarting" and conmon.process_alive(st.conmon_pid):
            self._watch(c, mon)
            return
        code = conmon.read_exit_code(mon.exit_file)
        if code is None:
            code = conmon.read_exit_code(layout.persist_exit_file)
        finished = _mtime_ns(mon.exit_file) or time.time_ns()
        if st.status == "restarting":
            st.status = "exited"
            self.save(c)
            return
        pump = None
        self._start_log_pump(c)
        pump = self._log_pumps.get(c.id)
        if pump:
            with contextlib.suppress(Exception):
                await pump.pump_once(final=True)
        await self._on_exit(c, 255 if code is None else code, conmon.oom_killed(layout),
                            finished)

    # ----------------------------------------------------------- wait
    async def wait(self: ContainerManager, ref: str, condition: str  # type: ignore[misc]
                   ) -> tuple[int, str]:
        if condition == "":
            condition = "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut_r: asyncio.Future[None] = loop.create_future()
            self._removed_waiters.setdefault(c.id, []).append(fut_r)
            if c.state.running or c.state.status in ("restarting", "created"):
                fut_e = loop.create_future()
                self._exit_waiters.setdefault(c.id, []).append(fut_e)
            await fut_r
            return c.state.exit_code, c.state.error
        if condition == "not-running" and not c.state.running and \
                c.state.status != "restarting":
            return c.state.exit_code, ""
        fut: asyncio.Future[tuple[int, str]] = loop.create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        return await fut

    def _wake_exit_waiters(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        for f in self._exit_waiters.pop(c.id, []):
            if not f.done():
                f.set_result((c.state.exit_code, ""))

    def notify_removed(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        self._wake_exit_waiters(c)
        for f in self._removed_waiters.pop(c.id, []):
            if not f.done():
                f.set_result(None)

    # ----------------------------------------------------------- signals
    async def kill(self: ContainerManager, ref: str, signal: str | None) -> None:  # type: ignore[misc]
        c = self.get(ref)
        sig = check_kill_signal(signal) if signal else 9
        if not c.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {c.id} is not running")
        self.note_user_kill(c, sig)
        await self._signal(c, sig)
        self.emit(c, "kill", signal=str(sig))
        if sig == 9:
            await self._wait_exit(c, 10)

    async def _signal(self: ContainerManager, c: Container, sig: int) -> None:  # type: ignore[misc]
        try:
            await rtcmd.kill(self.runtime_for(c), c.id, sig, all_processes=False)
        except DockyardError:
            if c.state.pid and conmon.process_alive(c.state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.state.pid, sig)

    async def _wait_exit(self: ContainerManager, c: Container, timeout: float | None) -> bool:  # type: ignore[misc]
        if not c.state.running:
            return True
        fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self: ContainerManager, ref: str, timeout: int | None,  # type: ignore[misc]
                   signal: str | None) -> None:
        c = self.get(ref)
        self.cancel_restart(c)
        if c.state.status == "restarting":
            c.state.manually_stopped = True
            # A restart already past its delay holds the lock while it
            # starts the container: let it finish, then stop what it started.
            async with self.lock(c):
                pass
        if c.state.status == "restarting":
            c.state.status = "exited"
            self.save(c)
            self._wake_exit_waiters(c)
            return
        if not c.state.running:
            raise NotModified("container is already stopped")
        c.state.manually_stopped = True
        await self.stop_container(c, timeout, signal)

    async def stop_container(self: ContainerManager, c: Container, timeout: int | None,  # type: ignore[misc]
                             signal: str | None = None) -> None:
        sig = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = 10
        if c.state.status == "paused":
            with contextlib.suppress(DockyardError):
                await rtcmd.resume(self.runtime_for(c), c.id)
            c.state.status = "running"
        self.emit(c, "kill", signal=str(sig))
        await self._signal(c, sig)
        if await self._wait_exit(c, None if timeout < 0 else timeout):
            self.emit(c, "stop")
            return
        self.emit(c, "kill", signal="9")
        await self._signal(c, 9)
        await self._wait_exit(c, 30)
        self.emit(c, "stop")

    async def kill_for_removal(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        self.cancel_restart(c)
        c.state.manually_stopped = True
        if c.state.status == "restarting":
            async with self.lock(c):   # see stop(): a restart may be mid-start
                pass
        if c.state.status == "restarting":
            c.state.status = "exited"
            return
        if not c.state.running:
            return
        # Thaw first whatever our record says: a cgroup frozen behind our back
        # (or by a daemon that died mid-pause) holds SIGKILL until it thaws.
        with contextlib.suppress(DockyardError):
            await rtcmd.resume(self.runtime_for(c), c.id)
        self.emit(c, "kill", signal="9")
        await self._signal(c, 9)
        if not await self._wait_exit(c, 15):
            raise SystemError_(f"container {c.id} did not exit after SIGKILL")

    async def restart(self: ContainerManager, ref: str, timeout: int | None,  # type: ignore[misc]
                      signal: str | None) -> None:
        c = self.get(ref)
        if c.state.running:
            c.state.manually_stopped = True
            await self.stop_container(c, timeout, signal)
        self.cancel_restart(c)
        async with self.lock(c):
            c.state.manually_stopped = False
            self.restart_reset(c)
            await self._start_locked(c)
        self.emit(c, "restart")

    # ----------------------------------------------------------- pause
    async def pause(self: ContainerManager, ref: str) -> None:  # type: ignore[misc]
        c = self.get(ref)
        if c.state.status == "paused":
            raise Conflict(f"container {c.id} is already paused")
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        await rtcmd.pause(self.runtime_for(c), c.id)
        c.state.status = "paused"
        self.save(c)
        self.emit(c, "pause")

    async def unpause(self: ContainerManager, ref: str) -> None:  # type: ignore[misc]
        c = self.get(ref)
        if c.state.status != "paused":
            raise Conflict(f"container {c.id} is not paused")
        await rtcmd.resume(self.runtime_for(c), c.id)
        c.state.status = "running"
        self.save(c)
        self.emit(c, "unpause")

    # ----------------------------------------------------------- restart policy hooks
    def cancel_restart(self: ContainerManager, c: Container) -> None:  # type: ignore[misc]
        t = self._restart_timers.pop(c.id, None)
        if t is not None:
            t.cancel()

    def schedule_restart(self: ContainerManager, c: Container, delay: float) -> None:  # type: ignore[misc]
        c.state.status = "restarting"
        self.save(c)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._restart_timers.pop(c.id, None)
            if c.id not in self.by_id or c.state.manually_stopped:
                return
            async with self.lock(c):
                # stop/kill may have come while we waited for the lock
                if c.state.manually_stopped or c.state.status != "restarting" or \
                        c.id not in self.by_id:
                    return
                c.state.restart_count += 1
                try:
                    await self._start_locked(c)
                except DockyardError as e:
                    log.warning("restarting %s failed: %s", c.id[:12], e.message)
                    c.state.status = "exited"
                    self.save(c)

        self._restart_timers[c.id] = asyncio.create_task(later())


_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH(: No such file or "
                             r"directory)?")


def docker_start_error(runtime_message: str) -> str:
    """The runtime's create error in dockerd's words, which clients match on
    (`docker run` exits 127 on "executable file not found")."""
    msg = runtime_message.strip()
    m = _CRUN_NOT_FOUND.search(msg)
    if m:
        msg = f'exec: "{m.group(1)}": executable file not found in $PATH'
    elif "open executable: Operation not permitted" in msg or "Permission denied" in msg:
        # crun's words for what runc calls "permission denied" (exit 126)
        msg = msg.replace("Operation not permitted", "permission denied").replace(
            "Permission denied", "permission denied")
    return f"failed to create task for container: OCI runtime create failed: {msg}: unknown"


async def _pump_loop(pump: Any) -> None:
    while True:
        await asyncio.sleep(0.2)
        with contextlib.suppress(Exception):
            await pump.pump_once()


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
