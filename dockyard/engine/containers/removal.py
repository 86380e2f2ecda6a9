"""`ContainerRemover`: removing stopped containers, one or by prune.

Everything a container left on the host goes (runtime state, mounts, the
network namespace, the bundle, its directory), the record first, so a
crash half way never leaves a ghost container; then the waiters of
`wait?condition=removed` and attach clients still waiting for a start are
released and `destroy` is emitted.  The directory is removed by
`fstree.remove_tree` (any depth, mounts left inside detached); what cannot
be removed now is logged, and a directory without a record is swept at the
next start (`sweep_orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from dockyard.engine.containers.attach import AttachWaiters
from dockyard.engine.containers.monitor import ExitMonitor
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.restart import RestartManager
from dockyard.engine.containers.runner import ContainerRunner
from dockyard.engine.containers.store import RECORD_FILE, ContainerStore
from dockyard.engine.containers.views import labels_match, parse_until
from dockyard.engine.fs.views import unmount_stale_views
from dockyard.engine.volumes.mounts import ContainerMounts
from dockyard.errors import InvalidParameter
from dockyard.network.netns import remove_netns
from dockyard.util.fstree import remove_quietly, tree_size
from dockyard.util.mount import umount

log = logging.getLogger("dockyard.containers")

PRUNE_FILTERS = ("until", "label", "label!")


class ContainerRemover:
    def __init__(self, store: ContainerStore, runner: ContainerRunner, restart: RestartManager,
                 waiters: AttachWaiters, monitor: ExitMonitor, mounts: ContainerMounts) -> None:
        self.store = store
        self.runner = runner
        self.restart = restart
        self.waiters = waiters
        self.monitor = monitor
        self.mounts = mounts

    async def destroy(self, c: Container, remove_volumes: bool = False) -> None:
        """Remove every trace of a stopped container.  It leaves the store
        first: from then on no late writer (the exit handler of a start that
        raced this removal, a restart timer) can save its record again.
        `remove_volumes` (`docker rm -v`, `--rm`) also removes its anonymous
        volumes that no other container uses."""
        async with self.store.lock(c):
            if c not in self.store:
                return          # removed meanwhile (rm -f and --rm racing)
            self.restart.cancel(c)
            self.store.discard(c)
            await self.runner.release_again(c)
            await asyncio.to_thread(self._remove_files, c)
            await self.mounts.forget(c, remove_volumes)
        await self.waiters.cancelled(c)
        self.store.emit(c, "destroy")
        self.monitor.removed(c)

    def _remove_files(self, c: Container) -> None:
        umount(str(self.store.rootfs(c)))
        d = self.store.dir(c)
        unmount_stale_views(d)
        remove_netns(self.store.netns_path(c))
        remove_quietly(self.store.bundle(c), "bundle", unmount=True)
        # The record goes first, so a crash half way leaves no ghost container.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d / RECORD_FILE)
        remove_quietly(d, f"the directory of container {c.id[:12]}", unmount=True)

    def sweep_orphans(self, dirs: list[Path]) -> None:
        """At start (blocking): container directories without a record, left
        by a removal or a create a crash interrupted, and what they held on
        the host.  Never raises: a start must not fail on leftovers."""
        for d in dirs:
            log.info("removing the leftovers of container %s", d.name[:12])
            try:
                remove_netns(self.store.netns_dir / d.name)
            except OSError as e:
                log.warning("netns of %s: %s", d.name[:12], e)
            remove_quietly(self.store.bundles / d.name, "bundle", unmount=True)
            remove_quietly(d, "container directory", unmount=True)

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        for k in filters:
            if k not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{k}'")
        until = parse_until(filters.get("until"))
        deleted: list[str] = []
        reclaimed = 0
        for c in self.store:
            if c.state.running or c.state.status in ("restarting", "removing"):
                continue
            if until is not None and c.created >= until:
                continue
            if not labels_match(c.config.get("Labels") or {}, filters):
                continue
            reclaimed += await asyncio.to_thread(tree_size, self.store.upper_dir(c))
            await self.destroy(c)
            deleted.append(c.id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
