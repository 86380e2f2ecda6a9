"""A container's mount points: what its record keeps of each mount, and
Docker's MountPoint shape for inspect and `docker ps`.

The record keeps Docker's fields under Docker's names (so `Name` and
`Type` can be read straight from a record), and beside them what the
engine needs at every start: whether a missing bind source is made, the
tmpfs data, the bind options, whether the volume was named (`docker rm -v`
keeps named volumes) and whether it is filled from the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class MountPoint:
    type: str                      # "bind", "volume" or "tmpfs"
    destination: str
    source: str = ""               # host path (a volume's _data for volumes)
    name: str = ""                 # volume name
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    explicit_propagation: bool = False   # bind: asked for, not the default or rslave
    named: bool = False            # volume given by name (rm -v keeps it)
    copy_data: bool = False
    create_source: bool = False    # bind: make a missing host directory at start
    tmpfs_data: str = ""
    non_recursive: bool = False
    ro_non_recursive: bool = False
    ro_force_recursive: bool = False

    @property
    def is_volume(self) -> bool:
        return self.type == "volume"

    def api(self) -> dict[str, Any]:
        """Docker's types.MountPoint (Name and Driver only when set)."""
        out: dict[str, Any] = {"Type": self.type}
        if self.name:
            out["Name"] = self.name
        out["Source"] = self.source
        out["Destination"] = self.destination
        if self.driver:
            out["Driver"] = self.driver
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    def to_record(self) -> dict[str, Any]:
        out = self.api()
        out.update({"Named": self.named, "CopyData": self.copy_data,
                    "PropagationGiven": self.explicit_propagation,
                    "CreateSource": self.create_source, "TmpfsData": self.tmpfs_data,
                    "NonRecursive": self.non_recursive,
                    "ReadOnlyNonRecursive": self.ro_non_recursive,
                    "ReadOnlyForceRecursive": self.ro_force_recursive})
        return out

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> MountPoint:
        return cls(type=d.get("Type") or "", destination=d.get("Destination") or "",
                   source=d.get("Source") or "", name=d.get("Name") or "",
                   driver=d.get("Driver") or "", mode=d.get("Mode") or "",
                   rw=bool(d.get("RW", True)), propagation=d.get("Propagation") or "",
                   explicit_propagation=bool(d.get("PropagationGiven")),
                   named=bool(d.get("Named")), copy_data=bool(d.get("CopyData")),
                   create_source=bool(d.get("CreateSource")),
                   tmpfs_data=d.get("TmpfsData") or "",
                   non_recursive=bool(d.get("NonRecursive")),
                   ro_non_recursive=bool(d.get("ReadOnlyNonRecursive")),
                   ro_force_recursive=bool(d.get("ReadOnlyForceRecursive")))


def points_of(records: list[dict[str, Any]]) -> list[MountPoint]:
    return [MountPoint.from_record(r) for r in records]


def api_mounts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """inspect's and ps's `Mounts`: Docker's fields only."""
    return [MountPoint.from_record(r).api() for r in records]


def covers(point_dest: str, path: str) -> bool:
    """moby HasResource: `path` is the mount's destination or below it."""
    dest = point_dest.rstrip("/") or "/"
    return path == dest or path.startswith(dest + "/") or dest == "/"
