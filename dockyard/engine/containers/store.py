"""`ContainerStore`: the container records, their names, locks and files.

Owns the in-memory index (id -> record, name -> id), the per-container
locks, where each container's files live, and writing records to disk.  A
name is reserved before the first `await` of a create and released if the
create fails, so two concurrent creates can never both take it.  Every
container event goes out through `emit`, with Docker's attributes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

from dockyard.engine.containers.record import Container
from dockyard.engine.events import EventBus
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.oci.cgroupparent import container_cgroups_path
from dockyard.runtime.conmon import ContainerLayout, process_alive, read_pid_file_now

log = logging.getLogger("dockyard.containers")

RECORD_FILE = "config.v2.json"


def _private(d: Path) -> None:
    """At most 0710: nothing for others (older versions left some 0755), the
    group may only pass through (a remapped root's group must)."""
    try:
        mode = stat.S_IMODE(d.lstat().st_mode)
        if mode & 0o067 and not d.is_symlink():
            os.chmod(d, mode & 0o710)
    except OSError as e:
        log.warning("cannot make %s private: %s", d, e)


class ContainerStore:
    def __init__(self, data_root: Path, exec_root: Path, events: EventBus) -> None:
        self.root = data_root / "containers"
        self.bundles = exec_root / "bundles"
        self.netns_dir = exec_root / "netns"
        self.events = events
        self._by_id: dict[str, Container] = {}
        self._short_ids: set[str] = set()         # the 12-character ids in use
        self._names: dict[str, str] = {}          # name -> id (reserved ones too)
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------ paths
    def dir(self, c: Container | str) -> Path:
        return self.root / (c if isinstance(c, str) else c.id)

    def bundle(self, c: Container) -> Path:
        return self.bundles / c.id

    def rootfs(self, c: Container) -> Path:
        return self.dir(c) / "merged"

    def upper_dir(self, c: Container) -> Path:
        return self.dir(c) / "upper"

    def netns_path(self, c: Container) -> Path:
        return self.netns_dir / c.id

    def log_path(self, c: Container) -> Path:
        return self.dir(c) / f"{c.id}-json.log"

    def conmon_log_path(self, c: Container) -> Path:
        """The FIFO conmon writes the container's k8s-file log into."""
        return self.dir(c) / "conmon.fifo"

    def log_spool_path(self, c: Container) -> Path:
        """What the log pump took from that FIFO and has yet to forget (a
        run started before the FIFO existed has conmon's own log here)."""
        return self.dir(c) / "conmon.log"

    def layout(self, c: Container) -> ContainerLayout:
        return ContainerLayout.in_bundle(str(self.bundle(c)),
                                         log_path=str(self.conmon_log_path(c)))

    # ------------------------------------------------------------ index
    def __iter__(self) -> Iterator[Container]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, c: Container) -> bool:
        return self._by_id.get(c.id) is c

    def find(self, container_id: str) -> Container | None:
        """By full id only; None when it is gone."""
        return self._by_id.get(container_id)

    def get(self, ref: str) -> Container:
        """By full id, name (with or without "/"), or unique id prefix."""
        if ref in self._by_id:
            return self._by_id[ref]
        name = ref.removeprefix("/")
        cid = self._names.get(name)
        if cid is not None and cid in self._by_id:
            return self._by_id[cid]
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            hits = [cid for cid in self._by_id if cid.startswith(ref)]
            if len(hits) == 1:
                return self._by_id[hits[0]]
            if len(hits) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def new_id(self) -> str:
        while True:
            cid = secrets.token_hex(32)
            if cid[:12] not in self._short_ids:
                return cid

    def names_taken(self) -> AbstractSet[str]:
        """The names in use, reserved ones too (a live view)."""
        return self._names.keys()

    def check_name_free(self, name: str, for_id: str = "") -> None:
        """Docker's 409 when `name` belongs to another container."""
        holder = self._names.get(name)
        if holder is not None and holder != for_id:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{holder}". You have to remove (or rename) that container to be able to '
                "reuse that name.")

    def reserve_name(self, name: str, container_id: str) -> None:
        """Take `name` for `container_id` now, or raise Docker's 409."""
        self.check_name_free(name, container_id)
        self._names[name] = container_id

    def rename(self, c: Container, new: str) -> None:
        self.reserve_name(new, c.id)
        self.release_name(c.name, c.id)
        c.name = new

    def release_name(self, name: str, container_id: str) -> None:
        if self._names.get(name) == container_id:
            del self._names[name]

    def add(self, c: Container) -> None:
        """A new or loaded record (its name already reserved for a new one)."""
        self._by_id[c.id] = c
        self._short_ids.add(c.id[:12])
        self._names[c.name] = c.id

    def discard(self, c: Container) -> None:
        if self._by_id.pop(c.id, None) is not None:
            self._short_ids.discard(c.id[:12])
        self.release_name(c.name, c.id)
        self._locks.pop(c.id, None)

    def lock(self, c: Container) -> asyncio.Lock:
        return self._locks.setdefault(c.id, asyncio.Lock())

    # ------------------------------------------------------------ queries
    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self._by_id.values() if c.image_id == image_id]

    def counts(self) -> dict[str, int]:
        states = [c.state.status for c in self._by_id.values()]
        running = states.count("running")
        paused = states.count("paused")
        return {"Containers": len(states), "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(states) - running - paused}

    # ------------------------------------------------------------ disk
    def save(self, c: Container) -> None:
        """Write the record of a container in the store.  A writer that comes
        after the container was removed (an exit handler racing `rm -f`)
        writes nothing: removal wins, no record comes back from the dead."""
        if self._by_id.get(c.id) is c:
            c.save(self.dir(c))

    def save_new(self, c: Container) -> None:
        """Write the first record of a container being created."""
        c.save(self.dir(c))

    def load_all(self) -> list[Container]:
        """Read every record at daemon start (blocking); unreadable ones are
        logged and skipped."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        self.bundles.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private(self.root)
        _private(self.bundles)
        loaded = []
        for d in sorted(self.root.iterdir()):
            if not (d / RECORD_FILE).exists():
                continue                # see orphans()
            _private(d)
            try:
                c = Container.load(d)
            except (OSError, ValueError, TypeError) as e:
                log.error("skipping unreadable container record %s: %s", d.name, e)
                continue
            self.add(c)
            loaded.append(c)
        return loaded

    def orphans(self) -> list[Path]:
        """Container directories without a record: what a removal or a create
        interrupted by a crash left (the record is written last by a create
        and removed first by a removal)."""
        out = []
        for d in sorted(self.root.iterdir()):
            if (len(d.name) == 64 and all(ch in "0123456789abcdef" for ch in d.name)
                    and d.is_dir() and not d.is_symlink()
                    and not (d / RECORD_FILE).exists() and d.name not in self._by_id):
                out.append(d)
        return out

    # ------------------------------------------------------------ events
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {**(c.config.get("Labels") or {}), "image": c.image_ref, "name": c.name}
        attrs.update(extra)
        self.events.emit("container", action, c.id, attrs)


def stale_container_state(data_root: Path, exec_root: Path, daemon_parent: str
                          ) -> list[tuple[str, ContainerLayout | None]]:
    """For `dockyard cleanup` after the engine has stopped: each recorded
    container's cgroup path, with its layout when its monitor is gone (its
    processes ended without the engine: killed, say), whose log keeper then
    has nothing left to hold the FIFO for.  A container still running keeps
    both (its layout is None)."""
    store = ContainerStore(data_root, exec_root, EventBus())
    out: list[tuple[str, ContainerLayout | None]] = []
    for record in sorted(store.root.glob(f"*/{RECORD_FILE}")):
        try:
            c = Container.load(record.parent)
        except (OSError, ValueError, TypeError):
            continue
        layout = store.layout(c)
        try:
            gone = not process_alive(read_pid_file_now(layout.conmon_pidfile))
        except ValueError:              # a torn pid file: its conmon never finished starting
            gone = True
        out.append((container_cgroups_path(c.id, c.host_config, daemon_parent),
                    layout if gone else None))
    return out
