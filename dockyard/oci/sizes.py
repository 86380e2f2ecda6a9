"""Sizes and tmpfs option strings as Docker parses them.

`parse_ram_size` is go-units' RAMInBytes (binary multipliers, `64m`, `1g`,
`512k`, `1.5GiB`).  `merge_tmpfs_options` is moby/sys/mount's
MergeTmpfsOptions: later options win over earlier ones of the same kind, so
the user's `exec` beats Docker's default `noexec`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dockyard.errors import InvalidParameter

_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_ram_size(text: str) -> int:
    """`64m` -> 67108864.  Raise InvalidParameter(`invalid size: 'x'`)."""
    m = _RAM.match(text)
    if not m:
        raise InvalidParameter(f"invalid size: '{text}'")
    try:
        num = float(m.group(1))
    except ValueError:
        raise InvalidParameter(f"invalid size: '{text}'") from None
    return int(num * _BINARY[(m.group(2) or "").lower()])


def format_tmpfs_size(size: int) -> str:
    """Docker's size= value for a byte count: largest of g/m/k dividing evenly."""
    for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % div == 0:
            return f"{size // div}{suffix}"
    return str(size)


# Flag options and the mount flag bit each sets or clears; options touching
# the same bit collide (the later one wins).  Values are arbitrary keys.
_FLAG_KEYS: dict[str, str] = {
    "ro": "rdonly", "rw": "rdonly",
    "suid": "nosuid", "nosuid": "nosuid",
    "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec",
    "sync": "sync", "async": "sync",
    "dirsync": "dirsync", "remount": "remount",
    "mand": "mand", "nomand": "mand",
    "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime",
    "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
}
# All propagation-ish flags share one slot.
_PROPAGATION = {"bind", "rbind", "unbindable", "runbindable", "private", "rprivate",
                "shared", "rshared", "slave", "rslave"}
_TMPFS_DATA_KEYS = {"", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}

TMPFS_DEFAULT_OPTIONS: tuple[str, ...] = ("noexec", "nosuid", "nodev", "rprivate")


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """Deduplicate tmpfs options, later ones winning; raise on unknown data keys."""
    flag_seen: set[str] = set()
    data_seen: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = "propagation" if option in _PROPAGATION else _FLAG_KEYS.get(option)
        if key is not None:
            if key not in flag_seen:
                merged.insert(0, option)
                flag_seen.add(key)
            continue
        name, sep, _ = option.partition("=")
        if not sep or name not in _TMPFS_DATA_KEYS:
            raise InvalidParameter(f'invalid tmpfs option "{name}"')
        if name not in data_seen:
            merged.insert(0, option)
            data_seen.add(name)
    return merged


def tmpfs_mount_options(data: str) -> list[str]:
    """Spec options for a tmpfs from HostConfig.Tmpfs (`"size=64m,exec"`)."""
    opts = list(TMPFS_DEFAULT_OPTIONS)
    if data:
        opts.extend(data.split(","))
    return merge_tmpfs_options(opts)


def tmpfs_data_from_mount(tmpfs_options: dict | None, read_only: bool) -> str:
    """The data string for a `Mounts` entry of type tmpfs (TmpfsOptions).

    TmpfsOptions.Options only allows `exec`/`noexec` (`invalid option: X`).
    """
    raw: list[str] = []
    if read_only:
        raw.append("ro")
    opt = tmpfs_options or {}
    mode = opt.get("Mode") or 0
    if mode:
        raw.append(f"mode={mode:o}")
    size = opt.get("SizeBytes") or 0
    if size:
        raw.append("size=" + format_tmpfs_size(size))
    for item in opt.get("Options") or []:
        if not item or len(item) > 2:
            raise InvalidParameter("invalid option array length")
        if item[0] not in ("exec", "noexec"):
            raise InvalidParameter("invalid option: " + item[0])
        raw.append(item[0] if len(item) == 1 else f"{item[0]}={item[1]}")
    return ",".join(raw)
