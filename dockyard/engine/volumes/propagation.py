"""Bind propagation that reaches the host (`-v /src:/dst:rshared`, `:rslave`...).

A bind asking for shared or slave propagation only exchanges mounts with
the host when its source is on a shared mount (for slave: shared or
slave).  dockerd refuses such a bind otherwise (`path X is mounted on Y but
it is not a shared mount`), which on a host whose `/` is private (booted
without systemd) is every such bind.  dockyard makes the source a shared
mount point of its own instead, as an administrator would with `mount
--bind X X && mount --make-rshared X`: then mounts made below it on the
host appear in the container and, for shared, the container's appear on
the host, which is what the option asks for.

Each such self-bind is recorded in `<exec-root>/shared-sources/` before it
is made (so a crash cannot lose one) and undone when no running container
needs it any more: at the end of each run and at daemon start.  It is only
undone while it is still the top mount on its path with the id it got;
anything mounted over it meanwhile stays, with a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter
from dockyard.util.atomic import atomic_write
from dockyard.util.mount import MNT_DETACH, MS_BIND, MS_REC, mount, umount, unescape_mountinfo

log = logging.getLogger("dockyard.volumes")

MS_SHARED = 1 << 20
SHARED_MODES = ("shared", "rshared")
SLAVE_MODES = ("slave", "rslave")


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    mount_point: str
    shared: bool
    slave: bool


def parse_mountinfo(text: str) -> list[MountInfo]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields:
            continue
        optional = fields[6:fields.index("-")]
        out.append(MountInfo(int(fields[0]), unescape_mountinfo(fields[4]),
                             any(o.startswith("shared:") for o in optional),
                             any(o.startswith("master:") for o in optional)))
    return out


def mount_of(path: str, mounts: list[MountInfo]) -> MountInfo | None:
    """The mount `path` is on: the last mounted of the longest mount point."""
    best: MountInfo | None = None
    for m in mounts:
        mp = m.mount_point
        inside = path == mp or path.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    return best


def needed(propagation: str) -> str:
    """"shared", "slave" or "" for a bind's propagation mode."""
    if propagation in SHARED_MODES:
        return "shared"
    return "slave" if propagation in SLAVE_MODES else ""


def satisfied(info: MountInfo | None, need: str) -> bool:
    if info is None or not need:
        return True
    return info.shared or (need == "slave" and info.slave)


def _read_mountinfo() -> list[MountInfo]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


class SharedSources:
    """The self-binds the engine made; blocking, callers use a thread."""

    def __init__(self, exec_root: Path) -> None:
        self.dir = exec_root / "shared-sources"

    def _record(self, source: str) -> Path:
        return self.dir / (hashlib.sha256(source.encode()).hexdigest()[:32] + ".json")

    def can_carry(self, source: str, propagation: str) -> bool:
        return satisfied(mount_of(os.path.realpath(source), _read_mountinfo()),
                         needed(propagation))

    def ensure(self, source: str, propagation: str) -> None:
        """Make `source` a shared mount point when its mount cannot carry
        `propagation`; nothing when it can (or none is asked for)."""
        need = needed(propagation)
        path = os.path.realpath(source)
        info = mount_of(path, _read_mountinfo())
        if satisfied(info, need):
            return
        if path == "/":
            raise InvalidParameter(f"path / is mounted on / but it is not a {need} mount: "
                                   "make it one (mount --make-rshared /) for a bind of / "
                                   f"with {propagation} propagation")
        self.dir.mkdir(mode=0o700, exist_ok=True)
        record = self._record(path)
        atomic_write(record, json.dumps({"path": path, "mount_id": 0}).encode(), 0o600,
                     make_parents=False)
        try:
            mount(path, path, None, MS_BIND | MS_REC)
            mount("", path, "", MS_SHARED | MS_REC)
        except OSError:
            self._undo(path, record)
            raise
        top = mount_of(path, _read_mountinfo())
        atomic_write(record, json.dumps({"path": path, "mount_id": top.mount_id if top else 0}
                                        ).encode(), 0o600, make_parents=False)
        log.info("made %s a shared mount point for a bind with %s propagation", path,
                 propagation)

    def _undo(self, path: str, record: Path) -> None:
        with_top = mount_of(path, _read_mountinfo())
        if with_top is not None and with_top.mount_point == path:
            umount(path, MNT_DETACH)
        record.unlink(missing_ok=True)

    def made(self) -> dict[str, int]:
        """path -> mount id of every self-bind on record."""
        out: dict[str, int] = {}
        if not self.dir.is_dir():
            return out
        for f in self.dir.glob("*.json"):
            try:
                raw = json.loads(f.read_text())
                out[str(raw["path"])] = int(raw["mount_id"])
            except (OSError, ValueError, KeyError, TypeError):
                f.unlink(missing_ok=True)
        return out

    def release_unused(self, still_needed: Iterable[str]) -> None:
        """Undo the self-binds no running container needs any more."""
        keep = {os.path.realpath(p) for p in still_needed}
        for path, mount_id in self.made().items():
            if path in keep:
                continue
            record = self._record(path)
            top = mount_of(path, _read_mountinfo())
            ids = {m.mount_id for m in _read_mountinfo()}
            if mount_id and mount_id not in ids:
                record.unlink(missing_ok=True)          # gone already
                continue
            if top is None or top.mount_point != path or (mount_id and top.mount_id != mount_id):
                log.warning("the shared mount made on %s stays for now: something else is "
                            "mounted over it", path)
                continue
            umount(path, MNT_DETACH)
            record.unlink(missing_ok=True)
