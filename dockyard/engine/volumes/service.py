"""`VolumeService`: Docker's `/volumes` operations (the volume backend) and
the volumes containers use.

Holds the local driver's volumes by name.  Which containers use a volume is
not kept as a counter: it is read from the container records (their mount
points), plus the creates still in progress (`hold`), so a daemon restart
or a crash cannot leave a count wrong.  A volume whose driver options say
what to mount on it (a tmpfs, a bind of a host directory) is mounted while
some running container uses it (`activate`/`deactivate`), and at daemon
start what is mounted without a running user is unmounted.

Texts and rules are dockerd's (moby volume/service): `get X: no such
volume`, `remove X: volume is in use - [ids]`, the list filters (dangling,
driver, label, name) and prune's (label, label!, all; anonymous volumes
only unless `all`, from API 1.42 on; volumes with driver options are never
pruned).  One deliberate difference: asking for a volume that exists with
other options or labels than it has is a 409, where dockerd returns the
existing one unchanged (asked for without any, it is taken as it is).
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Iterable
from typing import Any

from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.events import EventBus
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.oci.schema import decode_volume_create
from dockyard.util.timefmt import rfc3339_nano
from dockyard.volumes.local import DRIVER, LocalDriver, LocalVolume, new_volume_name

log = logging.getLogger("dockyard.volumes")

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")


def plugin_not_found(name: str, driver: str) -> NotFound:
    return NotFound(f'create {name}: error looking up volume plugin {driver}: plugin '
                    f'"{driver}" not found')


def check_driver(name: str, driver: str) -> None:
    if driver not in ("", DRIVER):
        raise plugin_not_found(name, driver)


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


def filter_bool(filters: dict[str, list[str]], key: str) -> bool | None:
    """moby filters.GetBoolOrDefault: None when absent."""
    if key not in filters:
        return None
    values = set(filters[key])
    is_true, is_false = bool(values & {"1", "true"}), bool(values & {"0", "false"})
    if is_true == is_false:
        raise InvalidParameter(f"invalid filter '{key}={_go_list(filters[key])}'")
    return is_true


def _kv_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """moby MatchKVList: every `key` / `key=value` holds (no filter: True)."""
    if not wanted:
        return True
    for want in wanted:
        k, eq, v = want.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def _regex_match(patterns: list[str], text: str) -> bool:
    if text in patterns:
        return True
    for p in patterns:
        try:
            if re.search(p, text):
                return True
        except re.error:
            continue
    return False


class VolumeService:
    def __init__(self, driver: LocalDriver, containers: ContainerStore, events: EventBus
                 ) -> None:
        self.driver = driver
        self.containers = containers
        self.events = events
        self._volumes: dict[str, LocalVolume] = {}
        self._holds: dict[str, set[str]] = {}        # name -> refs of creates in progress
        self._active: dict[str, set[str]] = {}       # name -> refs that mounted it
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()
        self._pruning = False

    # ------------------------------------------------------------ start
    async def load(self) -> None:
        for vol in await asyncio.to_thread(self.driver.load):
            self._volumes[vol.name] = vol

    async def restore(self, running: dict[str, list[str]]) -> None:
        """At start: `running` maps each running container to the volumes
        it mounts; device volumes nobody runs with are unmounted."""
        for cid, names in running.items():
            for name in names:
                vol = self._volumes.get(name)
                if vol is not None and vol.needs_mount:
                    self._active.setdefault(name, set()).add(cid)
        for vol in self._volumes.values():
            if not vol.needs_mount or self._active.get(vol.name):
                continue
            if await asyncio.to_thread(self.driver.mounted, vol):
                log.info("unmounting volume %s: no running container uses it", vol.name)
                try:
                    await asyncio.to_thread(self.driver.unmount, vol)
                except DockyardError as e:
                    log.warning("%s", e.message)

    # ------------------------------------------------------------ lookups
    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def find(self, name: str) -> LocalVolume | None:
        return self._volumes.get(name)

    def get(self, name: str) -> LocalVolume:
        vol = self._volumes.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def users(self, name: str) -> list[str]:
        """Ids of the containers that reference the volume (any state)."""
        return self._users_by_volume().get(name, [])

    def _users_by_volume(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.containers:
            for m in c.mounts:
                if m.get("Type") == "volume" and m.get("Name"):
                    ids = out.setdefault(m["Name"], [])
                    if c.id not in ids:
                        ids.append(c.id)
        for name, refs in self._holds.items():
            ids = out.setdefault(name, [])
            ids += sorted(refs - set(ids))
        return out

    def shape(self, vol: LocalVolume, usage: tuple[int, int] | None = None) -> dict[str, Any]:
        created = vol.created - vol.created % 1_000_000_000
        out: dict[str, Any] = {
            "CreatedAt": rfc3339_nano(created), "Driver": DRIVER, "Labels": dict(vol.labels),
            "Mountpoint": str(vol.path), "Name": vol.name, "Options": dict(vol.options),
            "Scope": "local"}
        if usage is not None:
            out["UsageData"] = {"Size": usage[0], "RefCount": usage[1]}
        return out

    # ------------------------------------------------------------ create
    async def create(self, raw: Any) -> dict[str, Any]:
        if raw is not None and not isinstance(raw, dict):
            raise InvalidParameter("invalid JSON: volume create options must be an object")
        body = decode_volume_create(raw or {})
        if body.get("ClusterVolumeSpec") is not None:
            raise Conflict("cluster volumes (ClusterVolumeSpec) are not supported by "
                           "dockyard: they need CSI volume plugins, which it does not have")
        vol, _ = await self.ensure(body.get("Name") or "", body.get("Driver") or "",
                                   dict(body.get("DriverOpts") or {}),
                                   dict(body.get("Labels") or {}))
        return self.shape(vol)

    async def ensure(self, name: str, driver: str, options: dict[str, str],
                     labels: dict[str, str], *, ref: str = ""
                     ) -> tuple[LocalVolume, bool]:
        """The volume `name` (a new anonymous one for ""), made when missing;
        whether it was made.  `ref` holds it for a create in progress.  An
        existing volume is refused when options or labels are asked for and
        it has others; asked for without any, it is taken as it is."""
        if not name:
            name = new_volume_name()
            labels = {**labels, ANONYMOUS_LABEL: ""}
        check_driver(name, driver)
        async with self._lock(name):
            vol = self._volumes.get(name)
            created = False
            if vol is None:
                try:
                    vol = await asyncio.to_thread(self.driver.create, name, options, labels)
                except DockyardError as e:
                    raise type(e)(f"create {name}: {e.message}") from None
                self._volumes[name] = vol
                created = True
                self.events.emit("volume", "create", name, {"driver": DRIVER})
            elif (options or labels) and (vol.options != options or vol.labels != labels):
                raise Conflict(f"create {name}: volume {name} already exists with other "
                               "options or labels; remove it first, or ask for it without "
                               "options to use it as it is")
            if ref:
                self._holds.setdefault(name, set()).add(ref)
        return vol, created

    def hold(self, name: str, ref: str) -> LocalVolume:
        """An existing volume, held for a create in progress (`ref`)."""
        vol = self.get(name)
        self._holds.setdefault(name, set()).add(ref)
        return vol

    def release_hold(self, names: Iterable[str], ref: str) -> None:
        for name in names:
            held = self._holds.get(name)
            if held is not None:
                held.discard(ref)
                if not held:
                    del self._holds[name]

    # ------------------------------------------------------------ list, inspect
    def list_volumes(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        vols = self._select(filters, LIST_FILTERS)
        return {"Volumes": [self.shape(v) for v in vols], "Warnings": []}

    def _select(self, filters: dict[str, list[str]], accepted: tuple[str, ...]
                ) -> list[LocalVolume]:
        for key in filters:
            if key not in accepted:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = filter_bool(filters, "dangling")
        users = self._users_by_volume()
        out = []
        for vol in sorted(self._volumes.values(), key=lambda v: v.name):
            if filters.get("driver") and DRIVER not in filters["driver"]:
                continue
            if filters.get("name") and not _regex_match(filters["name"], vol.name):
                continue
            if not _kv_match(filters.get("label", []), vol.labels):
                continue
            if filters.get("label!") and _kv_match(filters["label!"], vol.labels):
                continue
            if dangling is not None and dangling == bool(users.get(vol.name)):
                continue
            out.append(vol)
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        return self.shape(self.get(name))

    # ------------------------------------------------------------ remove, prune
    async def remove(self, name: str, force: bool = False) -> None:
        if name not in self._volumes and force:
            return
        vol = self.get(name)
        async with self._lock(name):
            if self._volumes.get(name) is not vol:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            del self._volumes[name]
            try:
                await asyncio.to_thread(self.driver.remove, vol)
            except BaseException:
                self._volumes[name] = vol
                raise
        self.events.emit("volume", "destroy", name, {"driver": DRIVER})

    async def remove_quietly(self, name: str) -> None:
        """`docker rm -v`: remove an anonymous volume unless another
        container still uses it (not an error, as in dockerd)."""
        try:
            await self.remove(name)
        except (NotFound, Conflict):
            pass
        except DockyardError as e:
            log.warning("removing volume %s: %s", name, e.message)

    async def prune(self, filters: dict[str, list[str]], api_version: tuple[int, int]
                    ) -> dict[str, Any]:
        filters = {k: list(v) for k, v in filters.items()}
        if api_version < (1, 42):
            filters["all"] = ["true"]
        all_ = filters.pop("all", None)
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        if all_ is not None and len(all_) > 1:
            raise InvalidParameter(f"invalid filter 'all={_go_list(all_)}': only one value is "
                                   "expected")
        everything = False
        if all_:
            word = all_[0].lower()
            if word not in ("1", "t", "true", "0", "f", "false"):
                raise InvalidParameter(f"invalid filter 'all': strconv.ParseBool: parsing "
                                       f'"{all_[0]}": invalid syntax')
            everything = word in ("1", "t", "true")
        if not everything:
            filters.setdefault("label", []).append(ANONYMOUS_LABEL)
        if self._pruning:
            raise Conflict("a prune operation is already running")
        self._pruning = True
        try:
            deleted: list[str] = []
            reclaimed = 0
            for vol in self._select(filters, ("label", "label!")):
                if vol.needs_mount or self.users(vol.name):
                    continue
                size = await asyncio.to_thread(self.driver.size, vol)
                try:
                    await self.remove(vol.name)
                except DockyardError as e:
                    log.warning("prune: volume %s: %s", vol.name, e.message)
                    continue
                deleted.append(vol.name)
                reclaimed += size
        finally:
            self._pruning = False
        self.events.emit("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------ usage
    async def usage(self) -> list[dict[str, Any]]:
        """Volumes with UsageData, as `GET /system/df` shows them (dockerd
        leaves out volumes with driver options: their data is elsewhere)."""
        out = []
        users = self._users_by_volume()
        for vol in sorted(self._volumes.values(), key=lambda v: v.name):
            if vol.needs_mount:
                continue
            size = await asyncio.to_thread(self.driver.size, vol)
            out.append(self.shape(vol, (size, len(users.get(vol.name, [])))))
        return out

    # ------------------------------------------------------------ device mounts
    async def activate(self, vol: LocalVolume, ref: str) -> None:
        """A container (`ref`) starts using the volume: mount its device
        first if it has one and nobody else has it mounted."""
        if not vol.needs_mount:
            return
        async with self._lock(vol.name):
            users = self._active.setdefault(vol.name, set())
            if not users and not await asyncio.to_thread(self.driver.mounted, vol):
                try:
                    await asyncio.to_thread(self.driver.mount, vol)
                except DockyardError as e:
                    raise type(e)(f"error while mounting volume '{vol.path}': "
                                  f"{e.message}") from None
            users.add(ref)

    async def deactivate(self, vol: LocalVolume, ref: str) -> None:
        if not vol.needs_mount:
            return
        async with self._lock(vol.name):
            users = self._active.get(vol.name)
            if users is None or ref not in users:
                return
            users.discard(ref)
            if not users:
                del self._active[vol.name]
                try:
                    await asyncio.to_thread(self.driver.unmount, vol)
                except DockyardError as e:
                    log.warning("%s", e.message)
