"""The local volume driver (moby volume/local), on `<data-root>/volumes/`.

A volume `NAME` is the directory `volumes/NAME/` (0701, root's) holding
`_data` (0755, owned by the container root: a remapped one under
userns-remap), what containers mount, and `volume.json`, its record
(labels, driver options, creation time), written last: a directory without
it is what a crash left half made, and `load` removes it.

Driver options are Docker's: `type`, `device` and `o` say what to mount on
`_data` when a container first uses the volume (`--opt type=tmpfs --opt
device=tmpfs --opt o=size=64m`, `--opt type=none --opt device=/srv/x --opt
o=bind`); `size` needs project quotas, which this driver does not set up,
so it is refused as dockerd refuses it without quota support.  A tmpfs or
bind volume is mounted once on `_data` at create to check the options the
kernel takes, then unmounted: a bad option is the create's 400, not a
failure at a later start.  Other file system types are only mounted when
used, as dockerd does.

Removal deletes the record first, then the tree without following any
symlink (a `_data` replaced by a symlink to `/etc` removes the link), and
never through a mount point.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dockyard.errors import InvalidParameter, SystemError_
from dockyard.util.atomic import atomic_write
from dockyard.util.fstree import DIR_FLAGS, remove_at, tree_size
from dockyard.util.mount import is_mountpoint
from dockyard.volumes.mountopts import MountError, mount_device, unmount_device

log = logging.getLogger("dockyard.volumes")

DRIVER = "local"
VOLUMES_DIR = "volumes"
DATA_DIR = "_data"
RECORD = "volume.json"
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME = re.compile(rf"^{NAME_CHARS}+\Z")
VALID_OPTIONS = ("type", "o", "device", "size")
_MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
# types mounted once at create to let the kernel check the options
_TRIAL_TYPES = ("tmpfs", "none", "bind")


def validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not _NAME.match(name):
        raise InvalidParameter(f'"{name}" includes invalid characters for a local volume '
                               f'name, only "{NAME_CHARS}" are allowed. If you intended to '
                               "pass a host directory, use absolute path")


def validate_options(opts: dict[str, str]) -> None:
    """moby local validateOpts, with its texts (the service adds `create NAME: `)."""
    for key in opts:
        if key not in VALID_OPTIONS:
            raise InvalidParameter(f'invalid option: "{key}"')
    if opts.get("type") == "cifs" and opts.get("device"):
        try:
            port = urlsplit(opts["device"]).port
        except ValueError as e:
            raise InvalidParameter(f"error parsing mount device url: {e}") from None
        if port is not None:
            raise InvalidParameter("port not allowed in CIFS device URL, include 'port' "
                                   "in 'o='")
    if "size" in opts:
        m = _RAM.match(opts["size"])
        if not m:
            raise InvalidParameter(f"invalid size: '{opts['size']}'")
        if float(m.group(1)) > 0:
            raise InvalidParameter("quota size requested but no quota support")
    for key in sorted(_MANDATORY):
        if key in opts:
            for need in _MANDATORY[key]:
                if need not in opts:
                    raise InvalidParameter(f'missing required option: "{need}"')


def needs_mount(options: dict[str, str]) -> bool:
    return bool(options.get("type") or options.get("device"))


@dataclass
class LocalVolume:
    name: str
    root: Path                      # volumes/NAME
    created: int                    # ns
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The mount point containers bind (Docker's `Mountpoint`)."""
        return self.root / DATA_DIR

    @property
    def needs_mount(self) -> bool:
        return needs_mount(self.options)

    def record(self) -> dict[str, Any]:
        return {"Name": self.name, "Driver": DRIVER, "Labels": self.labels,
                "Options": self.options, "Created": self.created}


class LocalDriver:
    """Blocking file work: the engine calls it from worker threads."""

    def __init__(self, data_root: Path, owner: tuple[int, int] = (0, 0)) -> None:
        self.root = data_root / VOLUMES_DIR
        self.owner = owner

    def prepare(self) -> None:
        self.root.mkdir(mode=0o701, exist_ok=True)
        os.chmod(self.root, 0o701)

    # ------------------------------------------------------------ records
    def load(self) -> list[LocalVolume]:
        """Every volume on disk; what a crash left half made is removed."""
        self.prepare()
        out: list[LocalVolume] = []
        for entry in sorted(os.listdir(self.root)):
            d = self.root / entry
            try:
                raw = json.loads((d / RECORD).read_text())
                vol = LocalVolume(name=raw["Name"], root=d, created=int(raw["Created"]),
                                  labels=dict(raw.get("Labels") or {}),
                                  options=dict(raw.get("Options") or {}))
                if vol.name != entry or not (d / DATA_DIR).is_dir():
                    raise ValueError("record does not match its directory")
            except FileNotFoundError:
                log.info("removing %s: a volume directory without a record", d)
                self._remove_dir(entry, unmount=True)
                continue
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("volume directory %s is unreadable, left alone: %s", d, e)
                continue
            out.append(vol)
        return out

    def create(self, name: str, options: dict[str, str], labels: dict[str, str]
               ) -> LocalVolume:
        validate_name(name)
        validate_options(options)
        vol = LocalVolume(name=name, root=self.root / name, created=time.time_ns(),
                          labels=dict(labels), options=dict(options))
        self.prepare()
        try:
            os.mkdir(vol.root, 0o701)
        except FileExistsError:
            raise InvalidParameter(f"volume directory {vol.root} exists already") from None
        try:
            os.chmod(vol.root, 0o701)
            os.mkdir(vol.path, 0o755)
            os.chown(vol.path, *self.owner)
            os.chmod(vol.path, 0o755)
            if vol.needs_mount and (options.get("type") or "") in _TRIAL_TYPES:
                self.mount(vol)         # the kernel's verdict on the options, now
                self.unmount(vol)
            atomic_write(vol.root / RECORD, json.dumps(vol.record()).encode(), 0o600,
                         make_parents=False)
        except BaseException:
            self._remove_dir(name, unmount=True)
            raise
        return vol

    def remove(self, vol: LocalVolume) -> None:
        if vol.needs_mount:
            self.unmount(vol)
        try:
            os.unlink(vol.root / RECORD)
        except FileNotFoundError:
            pass
        try:
            self._remove_dir(vol.name, unmount=False)
        except OSError as e:
            raise SystemError_(f"error removing volume path '{vol.root}': "
                               f"{e.strerror or e}") from None

    def _remove_dir(self, name: str, unmount: bool) -> None:
        """volumes/NAME and what is below it, never following a symlink; a
        mount point inside is an error unless `unmount` (half-made volumes
        only: their mounts are the driver's own)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a volume directory name: {name!r}")
        fd = os.open(self.root, DIR_FLAGS)
        try:
            remove_at(fd, name, unmount=unmount)
        finally:
            os.close(fd)

    # ------------------------------------------------------------ mounts
    def mount(self, vol: LocalVolume) -> None:
        """Mount the device of a volume with options on its `_data`."""
        opts = vol.options
        device = opts.get("device") or ""
        if not device:
            raise InvalidParameter("missing device in volume options")
        try:
            mount_device(device, str(vol.path), opts.get("type") or "", opts.get("o") or "")
        except MountError as e:
            raise InvalidParameter(f"failed to mount local volume: {_hide_password(e, opts)}"
                                   ) from None

    def unmount(self, vol: LocalVolume) -> None:
        try:
            unmount_device(str(vol.path))
        except OSError as e:
            if self.mounted(vol):
                raise SystemError_(f"unmounting volume {vol.name}: {e.strerror or e}") from e

    def mounted(self, vol: LocalVolume) -> bool:
        return is_mountpoint(str(vol.path))

    def size(self, vol: LocalVolume) -> int:
        return tree_size(vol.path)


def _hide_password(e: OSError, opts: dict[str, str]) -> str:
    text = str(e.strerror or e)
    for word in (opts.get("o") or "").split(","):
        if word.startswith("password="):
            text = text.replace(word, "password=********")
    return text


def new_volume_name() -> str:
    """An anonymous volume's name: 64 hex digits, as dockerd draws them."""
    return secrets.token_hex(32)
