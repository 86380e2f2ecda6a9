"""`ContainerRunner`: one container's runtime operations, without policy.

Create the runtime's container under a new conmon (spec first), start its
process, signal, pause and resume it, and release everything a run holds
on the host (the runtime's state, the log FIFO's keeper, the rootfs mount,
host mounts, an empty cgroup).  Errors come back in dockerd's words; the
state machine, events and restart decisions are the lifecycle's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.specbuild import SpecBuilder
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.logs.service import log_driver
from dockyard.engine.networks.records import NetworkRecord
from dockyard.errors import DockyardError, InvalidParameter, SystemError_
from dockyard.images.service import ImageService
from dockyard.network.netns import remove_netns
from dockyard.runtime import commands as rtcmd
from dockyard.runtime import conmon
from dockyard.runtime.commands import (
    ContainerCreateError,
    process_error_in_runc_words,
    start_error_exit_code,
)
from dockyard.runtime.runtimes import OCIRuntime, remove_empty_cgroup
from dockyard.util.mount import umount

log = logging.getLogger("dockyard.runner")

# conmon rotates an exec session's private log at this size (a container's
# log goes through a FIFO the daemon drains, never rotated by conmon)
CONMON_LOG_SIZE_MAX = 16 * 1024 * 1024

class StartError(DockyardError):
    """A start that failed; `exit_code` is what dockerd records (127 for a
    missing executable, 126 when it cannot be run), None to keep the old."""

    def __init__(self, error: DockyardError, exit_code: int | None) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.error = error
        self.exit_code = exit_code


def docker_start_error(runtime_message: str, argv0: str = "") -> str:
    """The runtime's create error in dockerd's words, which clients match on
    (`docker run` exits 127 on "executable file not found")."""
    msg = runtime_message.strip()
    runc_words = process_error_in_runc_words(msg, argv0)
    if runc_words != msg:
        msg = runc_words
    elif "open executable: Operation not permitted" in msg or "Permission denied" in msg:
        # crun's words for what runc calls "permission denied" (exit 126)
        msg = msg.replace("Operation not permitted", "permission denied").replace(
            "Permission denied", "permission denied")
    return f"failed to create task for container: OCI runtime create failed: {msg}: unknown"


class ContainerRunner:
    def __init__(self, store: ContainerStore, host: HostEnv, images: ImageService,
                 specs: SpecBuilder) -> None:
        self.store = store
        self.host = host
        self.images = images
        self.specs = specs
        self.conmon = conmon.ConmonSettings.detect(log_size_max=CONMON_LOG_SIZE_MAX)
        # containers whose last run gave back everything (this daemon saw the
        # release finish); removing them need not release it all again
        self._released: set[str] = set()

    def runtime_for(self, c: Container) -> OCIRuntime:
        return self.host.runtime(c.runtime)

    async def create(self, c: Container) -> conmon.MonitoredContainer:
        """Spec, bundle and the runtime's container under a new conmon; the
        process is not started yet.  Raises StartError."""
        self._released.discard(c.id)
        try:
            # a foreign-architecture image nothing can run: say so, not ENOEXEC
            self.host.emulation.check_can_run(self.images.image_config(c.image_id))
            await self.specs.prepare(c)
            io = conmon.ContainerIO(
                stdin=bool(c.config.get("OpenStdin")), tty=bool(c.config.get("Tty")),
                leave_stdin_open=not (c.config.get("StdinOnce") and not c.config.get("Tty")),
                log="none" if log_driver(c.host_config) == "none" else "fifo")
            return await conmon.create_container(self.runtime_for(c), self.conmon, c.id,
                                                 self.store.layout(c), io, name=c.name)
        except ContainerCreateError as e:
            msg = docker_start_error(e.message, c.path)
            raise StartError(InvalidParameter(msg), start_error_exit_code(msg)) from None
        except DockyardError as e:
            raise StartError(e, None) from None
        except OSError as e:
            raise StartError(SystemError_(str(e)), None) from None

    async def start(self, c: Container, mon: conmon.MonitoredContainer) -> None:
        """Start the created process; on failure conmon and the runtime's
        container are gone again.  Raises StartError."""
        rt = self.runtime_for(c)
        try:
            await rtcmd.start(rt, c.id)
        except DockyardError as e:
            with contextlib.suppress(Exception):
                await rtcmd.delete(rt, c.id, force=True)
            await conmon.kill_conmon(mon.conmon_pid)
            raise StartError(InvalidParameter(e.message),
                             start_error_exit_code(e.message)) from None

    async def signal(self, c: Container, sig: int) -> None:
        """Through the runtime; straight to the pid if the runtime cannot."""
        try:
            await rtcmd.kill(self.runtime_for(c), c.id, sig, all_processes=False)
        except DockyardError:
            if c.state.pid and conmon.process_alive(c.state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.state.pid, sig)

    async def pause(self, c: Container) -> None:
        await rtcmd.pause(self.runtime_for(c), c.id)

    async def resume(self, c: Container) -> None:
        await rtcmd.resume(self.runtime_for(c), c.id)

    def monitored(self, c: Container) -> conmon.MonitoredContainer:
        """The record's running process as conmon sees it (after a restart)."""
        return conmon.MonitoredContainer(c.id, c.state.pid, c.state.conmon_pid,
                                         self.store.layout(c), self.runtime_for(c))

    def networks_joined(self, c: Container) -> list[NetworkRecord]:
        return self.specs.networking.joined(c)

    async def release(self, c: Container) -> None:
        """Undo everything a run made on the host, whether it ended or never
        started: the runtime's container, the log FIFO's keeper (the exit
        monitor has drained the FIFO), the rootfs mount and what start
        mounted besides it, the network endpoints and published ports, the
        network namespace, the bundle (conmon's files), and the cgroup a
        failed create may leave."""
        with contextlib.suppress(Exception):
            await rtcmd.delete(self.runtime_for(c), c.id, force=True)
        await conmon.stop_log_keeper(self.store.layout(c))
        await asyncio.to_thread(umount, str(self.store.rootfs(c)))
        await asyncio.to_thread(self.specs.release_host_mounts, c)
        await self.specs.mounts.release(c)
        try:
            await self.specs.networking.stop(c, namespace_going=True)
        except Exception:   # the rest is still released; a later sync retries
            log.exception("releasing the networking of %s failed", c.id[:12])
        await asyncio.to_thread(remove_netns, self.store.netns_path(c))
        await asyncio.to_thread(shutil.rmtree, self.store.bundle(c), True)
        await asyncio.to_thread(remove_empty_cgroup, self.host.cgroups_path(c.id, c.host_config))
        self._released.add(c.id)

    async def release_again(self, c: Container) -> None:
        """At removal: `release`, unless the last run's release finished
        (a `--rm` container's exit handler has just done it all)."""
        if c.id in self._released:
            self._released.discard(c.id)
            return
        await self.release(c)
        self._released.discard(c.id)
