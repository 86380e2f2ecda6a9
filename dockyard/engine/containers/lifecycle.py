"""`Lifecycle`: Docker's container state machine.

start, stop, restart, kill, pause, unpause, wait, rename and remove; what
happens at an exit (restart policies, `--rm`, health monitors); and, at
daemon start, picking up containers that kept running under conmon or
ended while the daemon was away.  The runtime work is the runner's, the
waiting the exit monitor's; this module decides and records.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable

from dockyard.backend import RemoveOptions, StopOptions, WaitResult
from dockyard.engine.containers.attach import AttachWaiters
from dockyard.engine.containers.health import HealthMonitor
from dockyard.engine.containers.monitor import Exit, ExitMonitor
from dockyard.engine.containers.names import validate_name
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.removal import ContainerRemover
from dockyard.engine.containers.restart import RestartManager
from dockyard.engine.containers.runner import ContainerRunner, StartError
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks import legacy_links
from dockyard.engine.networks.records import NetworkRecord
from dockyard.errors import (
    Conflict,
    DockyardError,
    InvalidParameter,
    NotFound,
    NotModified,
    SystemError_,
)
from dockyard.oci.signals import check_kill_signal, parse_signal
from dockyard.runtime import conmon

log = logging.getLogger("dockyard.lifecycle")

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
DEFAULT_STOP_TIMEOUT = 10
KILL_GRACE_S = 10          # `docker kill` waits this long for the exit it caused
REMOVAL_KILL_WAIT_S = 15


class Lifecycle:
    def __init__(self, store: ContainerStore, runner: ContainerRunner, monitor: ExitMonitor,
                 restart: RestartManager, health: HealthMonitor, waiters: AttachWaiters,
                 remover: ContainerRemover) -> None:
        self.store = store
        self.runner = runner
        self.monitor = monitor
        self.restart_manager = restart
        self.health = health
        self.waiters = waiters
        self.remover = remover

    # ----------------------------------------------------------- start
    async def start(self, ref: str) -> None:
        c = self.store.get(ref)
        await self.monitor.settled(c)   # a run that just ended is released first
        if c.state.status == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        if c.state.running:
            raise NotModified("container is already running")
        if c.state.removal:
            raise Conflict("container is marked for removal and cannot be started")
        self.restart_manager.cancel(c)
        try:
            async with self.store.lock(c):
                if c.state.running:
                    raise NotModified("container is already running")
                if c.state.removal or c not in self.store:
                    raise Conflict("container is marked for removal and cannot be started")
                self.restart_manager.reset(c)
                await self._start_locked(c)
        except DockyardError as e:
            if not isinstance(e, NotModified) and c.host_config.get("AutoRemove"):
                # as dockerd: a --rm container that cannot start is removed
                with contextlib.suppress(DockyardError):
                    await self.remover.destroy(c, remove_volumes=True)
            raise

    async def _start_locked(self, c: Container) -> None:
        try:
            mon = await self.runner.create(c)
            # Attach clients that came before start get the stream now, so
            # the first bytes the process writes are not lost.
            await self.waiters.started(c, mon.layout)
            await self.runner.start(c, mon)
        except StartError as e:
            await self._start_failed(c, e.message, e.exit_code)
            raise e.error from None
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
            self.health.reset(c)
        self.store.save(c)
        self.monitor.watch(c, mon, self._on_exit)
        self._network_events(c, "connect", self.runner.networks_joined(c))
        self.store.emit(c, "start")

    def _network_events(self, c: Container, action: str, nets: list[NetworkRecord]) -> None:
        """Docker's `network connect` at each start and `disconnect` after
        each exit, one per network the run was on."""
        for net in nets:
            self.store.events.emit("network", action, net.id,
                                   {"container": c.id, "name": net.name, "type": net.driver})

    async def _start_failed(self, c: Container, message: str, code: int | None) -> None:
        c.state.error = message
        if code is not None:
            c.state.exit_code = code
        await self.runner.release(c)
        self.store.save(c)
        await self.waiters.cancelled(c)

    # ----------------------------------------------------------- exit
    async def _on_exit(self, c: Container, ex: Exit) -> None:
        self.monitor.forget(c)
        self.health.stop(c)
        st = c.state
        st.exit_code = ex.code
        st.oom_killed = ex.oom_killed
        st.finished_at = ex.finished_ns
        st.pid = 0
        st.conmon_pid = 0
        st.status = "exited"
        if ex.oom_killed:
            self.store.emit(c, "oom")
        left = self.runner.networks_joined(c)
        try:
            await self.runner.release(c)
        except Exception:   # the exit is still recorded; a later start sweeps again
            log.exception("releasing %s after its exit failed", c.id[:12])
        duration = max(0, (ex.finished_ns - st.started_at) // 1_000_000_000) \
            if st.started_at else 0
        self.store.emit(c, "die", exitCode=str(ex.code), execDuration=str(duration))
        self._network_events(c, "disconnect", left)
        delay = self.restart_manager.decision(c)
        if delay is None:
            self.store.save(c)
        self.monitor.exited(c)
        if delay is not None:
            self.restart_manager.schedule(c, delay, self._start_locked)
            return
        if c.host_config.get("AutoRemove"):
            with contextlib.suppress(DockyardError):
                await self.remover.destroy(c, remove_volumes=True)

    # ----------------------------------------------------------- daemon start and stop
    async def restore_all(self) -> None:
        """Reattach to what still runs, record what ended meanwhile, then
        start what the restart policies want running again."""
        for c in self.store:
            try:
                await self._restore(c)
            except Exception:
                log.exception("restoring container %s failed", c.id)
        for c in self.store:
            if c.state.running:
                self.health.resume(c)
            elif self.restart_manager.wanted_at_daemon_start(c):
                await self._restart_at_daemon_start(c)

    async def _restore(self, c: Container) -> None:
        st = c.state
        st.removal = False
        if st.status not in ("running", "paused", "restarting"):
            return
        mon = self.runner.monitored(c)
        if st.status != "restarting" and conmon.process_alive(st.conmon_pid):
            self.monitor.watch(c, mon, self._on_exit)
            return
        if st.status == "restarting":
            st.status = "exited"
            self.store.save(c)
            return
        await self._on_exit(c, await self.monitor.collect_exit(c, mon))

    async def _restart_at_daemon_start(self, c: Container) -> None:
        log.info("restarting %s (policy %s) at daemon start", c.id[:12],
                 (c.host_config.get("RestartPolicy") or {}).get("Name"))
        try:
            async with self.store.lock(c):
                if c.state.running:
                    return
                self.restart_manager.reset(c)
                await self._start_locked(c)
        except DockyardError as e:
            log.warning("starting %s at daemon start failed: %s", c.id[:12], e.message)
        except Exception:  # one container must not stop the others
            log.exception("starting %s at daemon start failed", c.id[:12])

    def shutdown(self) -> None:
        """Containers keep running without us (live restore); only our tasks stop."""
        self.monitor.stop_all()
        self.restart_manager.cancel_all()
        self.health.stop_all()

    # ----------------------------------------------------------- wait
    def wait(self, ref: str, condition: str) -> Awaitable[WaitResult]:
        c = self.store.get(ref)
        if condition == "":
            condition = "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "removed":
            removed = self.monitor.removed_future(c)

            async def until_removed() -> WaitResult:
                await removed
                return WaitResult(c.state.exit_code)

            return until_removed()
        if condition == "not-running" and not c.state.running and \
                c.state.status != "restarting":
            code = c.state.exit_code

            async def now() -> WaitResult:
                return WaitResult(code)

            return now()
        exited = self.monitor.exit_future(c)

        async def until_exit() -> WaitResult:
            return WaitResult(await exited)

        return until_exit()

    # ----------------------------------------------------------- signals
    async def kill(self, ref: str, signal: str | None) -> None:
        c = self.store.get(ref)
        sig = check_kill_signal(signal) if signal else 9
        if not c.state.running:
            raise Conflict(f"cannot kill container: {ref}: container {c.id} is not running")
        self.restart_manager.note_user_kill(c)
        await self.runner.signal(c, sig)
        self.store.emit(c, "kill", signal=str(sig))
        if c.state.status == "paused" and self._kill_unpauses(c, sig):
            # as dockerd: a paused container is thawed so the signal that
            # stops it arrives (SIGKILL waits in a frozen cgroup otherwise)
            await self._thaw_after_signal(c)
        if sig == 9:
            await self.monitor.wait_exit(c, KILL_GRACE_S)

    @staticmethod
    def _kill_unpauses(c: Container, sig: int) -> bool:
        """dockerd's killWithSignal: SIGKILL, or the container's stop signal
        (any signal when it has none of its own), resumes a paused one."""
        own = c.config.get("StopSignal")
        if sig == 9 or not own:
            return True
        try:
            return parse_signal(own) == sig
        except DockyardError:
            return False

    async def _thaw_after_signal(self, c: Container) -> None:
        try:
            await self.runner.resume(c)
        except DockyardError as e:
            log.warning("cannot unpause %s after a kill: %s", c.id[:12], e.message)
            return
        if c.state.status == "paused":      # not already recorded as exited
            c.state.status = "running"
            self.store.save(c)
            self.store.emit(c, "unpause")

    async def stop(self, ref: str, opts: StopOptions) -> None:
        c = self.store.get(ref)
        self.restart_manager.cancel(c)
        if c.state.status == "restarting":
            c.state.manually_stopped = True
            # A restart already past its delay holds the lock while it
            # starts the container: let it finish, then stop what it started.
            async with self.store.lock(c):
                pass
        if c.state.status == "restarting":
            c.state.status = "exited"
            self.store.save(c)
            self.monitor.exited(c)
            return
        if not c.state.running:
            raise NotModified("container is already stopped")
        c.state.manually_stopped = True
        await self._stop_running(c, opts)

    async def _stop_running(self, c: Container, opts: StopOptions) -> None:
        sig = parse_signal(opts.signal or c.config.get("StopSignal") or "SIGTERM")
        timeout = opts.timeout
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
        if c.state.status == "paused":
            with contextlib.suppress(DockyardError):
                await self.runner.resume(c)
            c.state.status = "running"
        self.store.emit(c, "kill", signal=str(sig))
        await self.runner.signal(c, sig)
        if await self.monitor.wait_exit(c, None if timeout < 0 else timeout):
            self.store.emit(c, "stop")
            return
        self.store.emit(c, "kill", signal="9")
        await self.runner.signal(c, 9)
        await self.monitor.wait_exit(c, 30)
        self.store.emit(c, "stop")

    async def restart(self, ref: str, opts: StopOptions) -> None:
        c = self.store.get(ref)
        if c.state.running:
            c.state.manually_stopped = True
            await self._stop_running(c, opts)
        # a run that ended on its own a moment ago is released first (its
        # exit is recorded before its endpoints, mounts and bundle are gone)
        await self.monitor.settled(c)
        self.restart_manager.cancel(c)
        async with self.store.lock(c):
            self.restart_manager.reset(c)
            await self._start_locked(c)
        self.store.emit(c, "restart")

    # ----------------------------------------------------------- pause
    async def pause(self, ref: str) -> None:
        c = self.store.get(ref)
        if c.state.status == "paused":
            raise Conflict(f"container {c.id} is already paused")
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        await self.runner.pause(c)
        if c.state.status != "running":
            # it exited, or another request paused it, while the runtime froze
            # it: what that recorded stands
            raise Conflict(f"container {c.id} is " + (
                "already paused" if c.state.status == "paused" else "not running"))
        c.state.status = "paused"
        self.store.save(c)
        self.store.emit(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.store.get(ref)
        if c.state.status != "paused":
            raise Conflict(f"Container {c.id} is not paused")
        await self.runner.resume(c)
        if c.state.status != "paused":
            return                      # exited, or resumed by a kill, meanwhile
        c.state.status = "running"
        self.store.save(c)
        self.store.emit(c, "unpause")

    # ----------------------------------------------------------- rename, remove
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.store.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        new = validate_name(new_name)
        if new == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        old = c.name
        self.store.rename(c, new)
        self.store.save(c)
        self.store.emit(c, "rename", oldName=f"/{old}")

    async def remove(self, ref: str, opts: RemoveOptions) -> None:
        if opts.link:
            await self._remove_link(ref)
            return
        c = self.store.get(ref)
        if c.state.removal:
            raise Conflict(f"removal of container {ref} is already in progress")
        if c.state.status == "paused" and not opts.force:
            raise Conflict(f'cannot remove container "/{c.name}": container is paused and must '
                           "be unpaused first")
        if c.state.running and not opts.force:
            raise Conflict(f'cannot remove container "/{c.name}": container is running: stop '
                           "the container before removing or force remove")
        if c.state.status == "restarting" and not opts.force:
            raise Conflict(f'cannot remove container "/{c.name}": container is restarting: '
                           "stop the container before removing or force remove")
        c.state.removal = True
        try:
            if c.state.running or c.state.status == "restarting":
                await self._kill_for_removal(c)
            await self.remover.destroy(c, remove_volumes=opts.volumes)
        finally:
            c.state.removal = False

    async def _remove_link(self, ref: str) -> None:
        """`docker rm --link /linker/alias`: the linker forgets the link (its
        running process keeps the /etc/hosts line and variables it started
        with, as under Docker); no container is removed."""
        name = ref if ref.startswith("/") else "/" + ref
        parent, _, alias = name.rpartition("/")
        if not parent:
            raise Conflict("Conflict, cannot remove the default link name of the container")
        try:
            linker = self.store.get(parent.lstrip("/"))
        except NotFound:
            raise NotFound(f"No such container: {ref.lstrip('/')}") from None
        async with self.store.lock(linker):
            keep = legacy_links.without_link(linker, alias)
            if keep is None:
                raise NotFound(f"No such container: {ref.lstrip('/')}")
            linker.host_config["Links"] = keep or None
            self.store.save(linker)

    async def _kill_for_removal(self, c: Container) -> None:
        self.restart_manager.cancel(c)
        c.state.manually_stopped = True
        if c.state.status == "restarting":
            async with self.store.lock(c):   # see stop(): a restart may be mid-start
                pass
        if c.state.status == "restarting":
            c.state.status = "exited"
            return
        if not c.state.running:
            return
        # Thaw first whatever our record says: a cgroup frozen behind our back
        # (or by a daemon that died mid-pause) holds SIGKILL until it thaws.
        with contextlib.suppress(DockyardError):
            await self.runner.resume(c)
        self.store.emit(c, "kill", signal="9")
        await self.runner.signal(c, 9)
        if not await self.monitor.wait_exit(c, REMOVAL_KILL_WAIT_S):
            raise SystemError_(f"container {c.id} did not exit after SIGKILL")
