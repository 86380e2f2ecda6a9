"""Containers: the record store, create, lookup, list, inspect, rename, remove.

Running them (start, stop, kill, wait, exit handling, restart policies) is
in `lifecycle.py`; this module owns the records and their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine import listing
from dockyard.engine.health import HealthChecks
from dockyard.engine.lifecycle import Lifecycle
from dockyard.engine.names import generate_name, validate_name
from dockyard.engine.record import Container, State, rfc3339
from dockyard.engine.restart import RestartPolicy
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.network.netns import remove_netns
from dockyard.oci.schema import check_create_body
from dockyard.util.mount import umount

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

log = logging.getLogger("dockyard.containers")

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerManager(Lifecycle, RestartPolicy, HealthChecks):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.data_root / "containers"
        self.bundles = engine.exec_root / "bundles"
        self.netns_dir = engine.exec_root / "netns"
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}          # name -> id
        self._locks: dict[str, asyncio.Lock] = {}
        super().__init__()

    # ------------------------------------------------------------ paths
    def dir(self, c: Container | str) -> Path:
        return self.root / (c if isinstance(c, str) else c.id)

    def bundle(self, c: Container) -> Path:
        return self.bundles / c.id

    def rootfs(self, c: Container) -> Path:
        return self.dir(c) / "merged"

    def netns_path(self, c: Container) -> Path:
        return self.netns_dir / c.id

    def log_path(self, c: Container) -> Path:
        return self.dir(c) / f"{c.id}-json.log"

    def conmon_log_path(self, c: Container) -> Path:
        return self.dir(c) / "conmon.log"

    def lock(self, c: Container) -> asyncio.Lock:
        return self._locks.setdefault(c.id, asyncio.Lock())

    def save(self, c: Container) -> None:
        c.save(self.dir(c))

    # ------------------------------------------------------------ start-up
    async def open(self) -> None:
        """Load every record and reattach to what still runs (daemon start)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        self.bundles.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.start_lifecycle()
        for d in sorted(self.root.iterdir()) if self.root.exists() else []:
            if not (d / "config.v2.json").exists():
                continue
            try:
                c = Container.load(d)
            except (OSError, ValueError, TypeError) as e:
                log.error("skipping unreadable container record %s: %s", d.name, e)
                continue
            self.by_id[c.id] = c
            self.names[c.name] = c.id
            _unmount_views(d)  # what a crash left mounted
        await self.restore_all()

    # ------------------------------------------------------------ lookup
    def get(self, ref: str) -> Container:
        if ref in self.by_id:
            return self.by_id[ref]
        name = ref.removeprefix("/")
        if name in self.names:
            return self.by_id[self.names[name]]
        if ref and all(ch in "0123456789abcdef" for ref_ch in [ref] for ch in ref_ch):
            hits = [cid for cid in self.by_id if cid.startswith(ref)]
            if len(hits) == 1:
                return self.by_id[hits[0]]
            if len(hits) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self.by_id.values() if c.image_id == image_id]

    def counts(self) -> dict[str, int]:
        running = sum(1 for c in self.by_id.values() if c.state.status == "running")
        paused = sum(1 for c in self.by_id.values() if c.state.status == "paused")
        return {"Containers": len(self.by_id), "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(self.by_id) - running - paused}

    # ------------------------------------------------------------ create
    async def create(self, body: Any, name: str | None, platform: str | None
                     ) -> tuple[str, list[str]]:
        from dockyard.engine.specbuild import merge_image_config, prepare_create

        if body is None:
            raise InvalidParameter("config cannot be empty in order to create a container")
        check_create_body(body)
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = body.get("HostConfig") or {}
        networking = body.get("NetworkingConfig") or {}
        if not isinstance(host_config, dict) or not isinstance(networking, dict):
            raise InvalidParameter("invalid JSON: HostConfig must be an object")
        image_ref = config.get("Image") or ""
        if not isinstance(image_ref, str) or not image_ref:
            raise InvalidParameter("config cannot be empty in order to create a container")
        if name:
            name = validate_name(name)
            if name in self.names:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{self.names[name]}". You have to remove (or rename) that container to be '
                    "able to reuse that name.")
        image = self.engine.images.get(image_ref)
        image_config = self.engine.images.image_config(image.id)
        check_platform(platform, image_config, image_ref)
        merged = merge_image_config(config, image_config)
        host_config, warnings = prepare_create(self.engine, merged, host_config, networking)
        check_log_config(host_config)
        cid = secrets.token_hex(32)
        while cid in self.by_id or cid[:12] in (c[:12] for c in self.by_id):
            cid = secrets.token_hex(32)
        if not name:
            name = generate_name(frozenset(self.names))
        if not merged.get("Hostname"):
            merged["Hostname"] = cid[:12]
        from dockyard.oci.normalize import command_of

        path, args = command_of(merged)
        c = Container(
            id=cid, name=name, created=time.time_ns(), image_ref=image_ref, image_id=image.id,
            config=merged, host_config=host_config, networking_config=networking,
            path=path, args=args,
            runtime=self.engine.runtimes.get(host_config.get("Runtime") or None).name,
            platform="linux", warnings=warnings,
        )
        d = self.dir(c)
        try:
            await asyncio.to_thread(self._make_dirs, c)
            self.save(c)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        self.by_id[cid] = c
        self.names[name] = cid
        self.emit(c, "create")
        return cid, warnings

    def _make_dirs(self, c: Container) -> None:
        d = self.dir(c)
        d.mkdir(mode=0o710)
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir(mode=0o755)

    # ------------------------------------------------------------ events
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {**(c.config.get("Labels") or {}), "image": c.image_ref, "name": c.name}
        attrs.update(extra)
        self.engine.events.emit("container", action, c.id, attrs)

    # ------------------------------------------------------------ inspect
    def inspect(self, ref: str, size: bool = False, api_version: tuple[int, int] = (1, 51)
                ) -> dict[str, Any]:
        c = self.get(ref)
        return listing.inspect_shape(self, c, size, api_version)

    def list(self, all_: bool, limit: int | None, size: bool, filters: dict[str, list[str]]
             ) -> list[dict[str, Any]]:
        return listing.list_containers(self, all_, limit, size, filters)

    # ------------------------------------------------------------ tty and logs
    async def resize(self, ref: str, height: int, width: int) -> None:
        from dockyard.runtime import conmon

        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if c.config.get("Tty"):
            try:
                await conmon.resize(self.layout(c), height, width)
            except OSError:
                raise Conflict(f"container {c.id} is not running") from None
        self.emit(c, "resize", height=str(height), width=str(width))

    def read_logs(self, c: Container, *, stdout: bool, stderr: bool, since_ns: int | None,
                  until_ns: int | None, tail: int | None, timestamps: bool, follow: bool
                  ) -> Any:
        from dockyard.engine.logs import read_logs

        d = self.dir(c)
        base = self.log_path(c)
        rotated = sorted((p for p in d.glob(base.name + ".*") if p.suffix[1:].isdigit()),
                         key=lambda p: -int(p.suffix[1:]))
        return read_logs(rotated + [base], stdout=stdout, stderr=stderr, since_ns=since_ns,
                         until_ns=until_ns, tail=tail, timestamps=timestamps, follow=follow,
                         is_running=lambda: c.state.running or c.state.status == "restarting",
                         pump=self._log_pumps.get(c.id))

    # ------------------------------------------------------------ rename
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        new = validate_name(new_name)
        if new == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        if new in self.names:
            raise Conflict(
                f'Conflict. The container name "/{new}" is already in use by container '
                f'"{self.names[new]}". You have to remove (or rename) that container to be able '
                "to reuse that name.")
        old = c.name
        c.name = new
        self.names.pop(old, None)
        self.names[new] = c.id
        self.save(c)
        self.emit(c, "rename", oldName=f"/{old}")

    # ------------------------------------------------------------ remove
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.removal:
            raise Conflict(f"removal of container {ref} is already in progress")
        if c.state.status == "paused" and not force:
            raise Conflict(f'cannot remove container "/{c.name}": container is paused and must '
                           "be unpaused first")
        if c.state.running and not force:
            raise Conflict(f'cannot remove container "/{c.name}": container is running: stop '
                           "the container before removing or force remove")
        c.state.removal = True
        try:
            if c.state.running or c.state.status == "restarting":
                await self.kill_for_removal(c)
            await self.destroy(c)
        finally:
            c.state.removal = False

    async def destroy(self, c: Container) -> None:
        """Remove every trace of a stopped container, then its record."""
        async with self.lock(c):
            self.cancel_restart(c)
            await self.release_runtime(c)
            await asyncio.to_thread(self._remove_files, c)
            self.by_id.pop(c.id, None)
            if self.names.get(c.name) == c.id:
                self.names.pop(c.name, None)
            self._locks.pop(c.id, None)
        for hook in self._attach_hooks.pop(c.id, []):
            with contextlib.suppress(Exception):
                await hook(None)
        self.emit(c, "destroy")
        self.notify_removed(c)

    def _remove_files(self, c: Container) -> None:
        umount(str(self.rootfs(c)))
        _unmount_views(self.dir(c))
        remove_netns(self.netns_path(c))
        shutil.rmtree(self.bundle(c), ignore_errors=True)
        d = self.dir(c)
        # The record goes first, so a crash half way leaves no ghost container.
        try:
            os.unlink(d / "config.v2.json")
        except FileNotFoundError:
            pass
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------ prune
    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        for k in filters:
            if k not in ("until", "label", "label!"):
                raise InvalidParameter(f"invalid filter '{k}'")
        until = listing.parse_until(filters.get("until"))
        deleted: list[str] = []
        reclaimed = 0
        for c in list(self.by_id.values()):
            if c.state.running or c.state.status in ("restarting", "removing"):
                continue
            if until is not None and c.created >= until:
                continue
            if not listing.labels_match(c.config.get("Labels") or {}, filters):
                continue
            reclaimed += await asyncio.to_thread(listing.dir_size, self.dir(c) / "upper")
            await self.destroy(c)
            deleted.append(c.id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def shutdown(self) -> None:
        await self.stop_lifecycle()


def _unmount_views(d: Path) -> None:
    """Temporary views of a stopped container (cp, export) still mounted:
    unmount before anything deletes the directory, or the delete would
    reach through the mount into the container's layers."""
    for view in d.glob("fsview-*"):
        umount(str(view))
        with contextlib.suppress(OSError):
            view.rmdir()


SUPPORTED_LOG_DRIVERS = ("json-file", "none")


def check_log_config(host_config: dict[str, Any]) -> None:
    """Only the drivers dockyard implements; others are refused, not ignored."""
    from dockyard.engine.logs_format import parse_json_file_opts

    lc = host_config.get("LogConfig") or {}
    driver = lc.get("Type") or "json-file"
    if driver not in SUPPORTED_LOG_DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    if driver == "json-file":
        parse_json_file_opts(lc.get("Config") or {})
    elif lc.get("Config"):
        key = next(iter(lc["Config"]))
        raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")


def check_platform(platform: str | None, image_config: dict[str, Any], ref: str) -> None:
    """`--platform`: the image must match it (no pulling of other variants)."""
    if not platform:
        return
    parts = platform.lower().split("/")
    want_os = parts[0]
    want_arch = parts[1] if len(parts) > 1 else ""
    want_variant = parts[2] if len(parts) > 2 else ""
    aliases = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}
    want_arch = aliases.get(want_arch, want_arch)
    have_os = image_config.get("os", "linux")
    have_arch = image_config.get("architecture", "")
    have_variant = image_config.get("variant", "")
    if (want_os and want_os != have_os) or (want_arch and want_arch != have_arch) or (
            want_variant and have_variant and want_variant != have_variant):
        have = "/".join(x for x in (have_os, have_arch, have_variant) if x)
        raise NotFound(f"image with reference {ref} was found but "
                       f"does not match the specified platform: wanted {platform}, "
                       f"actual: {have}")


__all__ = ["DEFAULT_PATH_ENV", "ContainerManager", "State", "rfc3339"]
