"""Docker's mount requests, parsed and checked with dockerd's texts.

Sources (moby daemon/volume/mounts linux parser, daemon registerMountPoints):

- `HostConfig.Binds` (`-v`): `dest`, `src:dest` or `src:dest:mode`, where an
  absolute `src` is a bind mount and anything else names a volume; `mode` is a
  comma list with at most one of each kind: `rw|ro`, `z|Z` (SELinux labels),
  a propagation, `nocopy`, a consistency;
- `HostConfig.Mounts` (`--mount`): Docker's mount.Mount objects of type
  bind, volume or tmpfs (image, npipe and cluster are not mounts this engine
  makes);
- `HostConfig.VolumesFrom` (`--volumes-from c[:ro|rw]`);
- `Config.Volumes` (`-v /path`, the image's VOLUME): an anonymous volume for
  every destination nothing else is mounted on.

Two mounts on one destination are refused (`Duplicate mount point`), with
`HostConfig.Tmpfs` counted too.  Pure: whether a bind source exists is asked
through a callable, and which volumes and containers exist is the engine's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter
from dockyard.oci.mounts import PROPAGATIONS
from dockyard.oci.sizes import tmpfs_data_from_mount

DEFAULT_PROPAGATION = "rprivate"
LOCAL_DRIVER = "local"
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")
_MODE_KINDS = (_RW_MODES, _LABEL_MODES, PROPAGATIONS, _COPY_MODES, _CONSISTENCY_MODES)
# what this engine mounts; Docker's other types are known but not mounts here
SUPPORTED_TYPES = ("bind", "volume", "tmpfs")
KNOWN_TYPES = (*SUPPORTED_TYPES, "image")
_EXCLUSIVE = (("BindOptions", "bind"), ("VolumeOptions", "volume"),
              ("ImageOptions", "image"), ("TmpfsOptions", "tmpfs"),
              ("ClusterOptions", "cluster"))


@dataclass(frozen=True)
class MountRequest:
    """One mount a create asks for, before volumes are looked up or made."""

    type: str                        # "bind", "volume" or "tmpfs"
    destination: str                 # clean absolute path in the container
    source: str = ""                 # bind: host path; volume: its name ("" anonymous)
    rw: bool = True
    mode: str = ""                   # the -v mode text, shown by inspect
    propagation: str = ""            # bind only (rprivate unless asked)
    explicit_propagation: bool = False
    driver: str = ""                 # volume: the driver asked for ("" = default)
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    copy_data: bool = True           # volume: fill a new volume from the image
    tmpfs_data: str = ""             # tmpfs: mount data (`size=..,mode=..`)
    non_recursive: bool = False
    ro_non_recursive: bool = False
    ro_force_recursive: bool = False
    create_source: bool = False      # bind: make a missing host directory (-v does)
    subpath: str = ""


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _invalid_mode(mode: str) -> InvalidParameter:
    return InvalidParameter(f"invalid mode: {mode}")


def valid_mount_mode(mode: str) -> bool:
    """moby linuxValidMountMode: known words, at most one of each kind."""
    if mode == "":
        return True
    counts = [0] * len(_MODE_KINDS)
    for word in mode.split(","):
        for i, kind in enumerate(_MODE_KINDS):
            if word in kind:
                counts[i] += 1
                break
        else:
            return False
    return all(n <= 1 for n in counts)


def mode_is_rw(mode: str) -> bool:
    return valid_mount_mode(mode) and "ro" not in mode.split(",")


def mode_propagation(mode: str) -> str:
    """The propagation a mode names, "" when none."""
    return next((w for w in mode.split(",") if w in PROPAGATIONS), "")


def _mode_copy(mode: str) -> bool | None:
    """False for `nocopy`, None when the mode says nothing about copying."""
    return False if "nocopy" in mode.split(",") else None


def _clean(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")) if path else path


class MountConfigError(InvalidParameter):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(f'invalid mount config for type "{kind}": {text}')


def check_destination(kind: str, target: str) -> None:
    """Docker's two rules for a mount destination (also HostConfig.Tmpfs keys)."""
    p = target.replace("\\", "/")
    if posixpath.normpath(p) == "/":
        raise MountConfigError(kind, "invalid specification: destination can't be '/'")
    if not posixpath.isabs(p):
        raise MountConfigError(kind, f"invalid mount path: '{p}' mount path must be absolute")


def _check_mount(m: Mapping, source_exists: Callable[[str], bool] | None) -> None:
    """moby validateMountConfigImpl, one Mounts entry (or a converted -v spec)."""
    kind = m.get("Type") or ""
    for key, owner in _EXCLUSIVE:
        if m.get(key) is not None and kind != owner:
            raise MountConfigError(kind, f"field {key} must not be specified")
    target = m.get("Target") or ""
    if not target:
        raise MountConfigError(kind, "field Target must not be empty")
    check_destination(kind, target)
    source = m.get("Source") or ""
    if kind == "bind":
        if not source:
            raise MountConfigError(kind, "field Source must not be empty")
        prop = (m.get("BindOptions") or {}).get("Propagation") or ""
        if prop and prop not in PROPAGATIONS:
            raise MountConfigError(kind, f"invalid propagation mode: {prop}")
        if not posixpath.isabs(source.replace("\\", "/")):
            raise MountConfigError(
                kind, f"invalid mount path: '{source}' mount path must be absolute")
        create = bool((m.get("BindOptions") or {}).get("CreateMountpoint"))
        if source_exists is not None and not create and not source_exists(source):
            raise MountConfigError(kind, f"bind source path does not exist: {source}")
    elif kind == "volume":
        subpath = (m.get("VolumeOptions") or {}).get("Subpath") or ""
        if subpath:
            if not source:
                raise MountConfigError(kind, "must not set Subpath when using anonymous "
                                             "volumes")
            parts = subpath.split("/")
            if subpath.startswith("/") or ".." in parts:
                raise MountConfigError(kind, "subpath must be a relative path within the "
                                             "volume")
    elif kind == "tmpfs":
        if source:
            raise MountConfigError(kind, "field Source must not be specified")
        tmpfs_data(m)
    elif kind == "image":
        if not source:
            raise MountConfigError(kind, "field Source must not be empty")
    else:
        raise MountConfigError(kind, "mount type unknown")


def tmpfs_data(m: Mapping) -> str:
    try:
        return tmpfs_data_from_mount(m.get("TmpfsOptions"), bool(m.get("ReadOnly")))
    except InvalidParameter as e:
        raise MountConfigError("tmpfs", e.message) from None


def _request(m: Mapping, mode: str = "", create_source: bool = False) -> MountRequest:
    """moby parseMountSpec: a checked mount.Mount as a request."""
    kind = m.get("Type") or ""
    if kind not in SUPPORTED_TYPES:
        raise InvalidParameter(f'mounts of type "{kind}" are not supported by this engine; '
                               "use bind, volume or tmpfs")
    dest = _clean(m.get("Target") or "")
    rw = not m.get("ReadOnly")
    if kind == "tmpfs":
        return MountRequest("tmpfs", dest, rw=rw, mode=mode, tmpfs_data=tmpfs_data(m))
    if kind == "volume":
        vo = m.get("VolumeOptions") or {}
        driver = vo.get("DriverConfig") or {}
        if vo.get("Subpath"):
            raise InvalidParameter("volume subpaths (VolumeOptions.Subpath, volume-subpath) "
                                   "are not supported yet: mount the whole volume")
        return MountRequest(
            "volume", dest, source=m.get("Source") or "", rw=rw, mode=mode,
            driver=driver.get("Name") or "", driver_opts=dict(driver.get("Options") or {}),
            labels=dict(vo.get("Labels") or {}), copy_data=not vo.get("NoCopy"))
    bo = m.get("BindOptions") or {}
    prop = bo.get("Propagation") or ""
    for key in ("ReadOnlyNonRecursive", "ReadOnlyForceRecursive"):
        if rw and bo.get(key):
            raise InvalidParameter(f"mount options conflict: !ReadOnly && BindOptions.{key}")
    if bo.get("ReadOnlyNonRecursive") and bo.get("ReadOnlyForceRecursive"):
        raise InvalidParameter("mount options conflict: ReadOnlyNonRecursive && "
                               "BindOptions.ReadOnlyForceRecursive")
    return MountRequest(
        "bind", dest, source=_clean(m.get("Source") or ""), rw=rw, mode=mode,
        propagation=prop or DEFAULT_PROPAGATION, explicit_propagation=bool(prop),
        non_recursive=bool(bo.get("NonRecursive")),
        ro_non_recursive=bool(bo.get("ReadOnlyNonRecursive")),
        ro_force_recursive=bool(bo.get("ReadOnlyForceRecursive")),
        create_source=create_source or bool(bo.get("CreateMountpoint")))


def parse_bind(raw: str, volume_driver: str = "") -> MountRequest:
    """One `-v` spec (moby ParseMountRaw)."""
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise InvalidParameter(_invalid_spec(raw))
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if valid_mount_mode(arr[1]):
            raise InvalidParameter(_invalid_spec(raw))   # `/dest:ro` names no source
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise InvalidParameter(_invalid_spec(raw))
    if not valid_mount_mode(mode):
        raise _invalid_mode(mode)
    spec: dict = {"Type": "bind" if posixpath.isabs(source) else "volume",
                  "Source": source, "Target": target, "ReadOnly": not mode_is_rw(mode)}
    if volume_driver and spec["Type"] == "volume":
        spec["VolumeOptions"] = {"DriverConfig": {"Name": volume_driver}}
    if _mode_copy(mode) is not None:
        spec.setdefault("VolumeOptions", {})["NoCopy"] = True
    if mode_propagation(mode):
        spec["BindOptions"] = {"Propagation": mode_propagation(mode)}
    try:
        _check_mount(spec, None)
    except InvalidParameter as e:
        raise InvalidParameter(f"{_invalid_spec(raw)}: {e.message}") from None
    return _request(spec, mode, create_source=True)


def parse_mount(m: Mapping, source_exists: Callable[[str], bool] | None = None
                ) -> MountRequest:
    """One `--mount` (a HostConfig.Mounts entry, decoded)."""
    _check_mount(m, source_exists)
    return _request(m)


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """(container reference, mode) of a `--volumes-from` entry."""
    if spec == "":
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if mode == "":
        return ref, "rw"
    if not valid_mount_mode(mode) or mode_propagation(mode) or _mode_copy(mode) is not None:
        raise _invalid_mode(mode)
    return ref, mode


def parse_requests(hc: Mapping, source_exists: Callable[[str], bool] | None = None
                   ) -> list[MountRequest]:
    """Binds then Mounts, each checked, with Docker's duplicate rules (and a
    HostConfig.Tmpfs destination counted as taken)."""
    tmpfs = {_clean(d) for d in (hc.get("Tmpfs") or {})}
    taken: set[str] = set()
    out: list[MountRequest] = []
    for raw in hc.get("Binds") or []:
        req = parse_bind(raw, hc.get("VolumeDriver") or "")
        if req.destination in taken or req.destination in tmpfs:
            raise InvalidParameter(f"Duplicate mount point: {req.destination}")
        taken.add(req.destination)
        out.append(req)
    for m in hc.get("Mounts") or []:
        req = parse_mount(m, source_exists)
        if req.destination in taken or req.destination in tmpfs:
            raise InvalidParameter(f"Duplicate mount point: {m.get('Target')}")
        taken.add(req.destination)
        out.append(req)
    return out


def anonymous_destinations(config_volumes: Mapping | None, taken: Sequence[str],
                           tmpfs: Mapping | None) -> list[str]:
    """Config.Volumes (the request's and the image's) that get an anonymous
    volume: those nothing else is mounted on, in a stable order."""
    skip = set(taken) | {_clean(d) for d in (tmpfs or {})}
    out: list[str] = []
    for spec in sorted(config_volumes or {}):
        check_destination("volume", spec)
        dest = _clean(spec)
        if dest not in skip:
            skip.add(dest)
            out.append(dest)
    return out


def bind_needs_slave(source: str, data_root: str, propagation_given: str) -> bool:
    """moby validateBindDaemonRoot: a bind of (or into) the data root gets
    rslave unless it asks for rslave or rshared itself; anything else is refused."""
    inside = source.startswith(data_root) or data_root.startswith(source)
    if not inside:
        return False
    if propagation_given in ("", "rslave", "rshared"):
        return propagation_given == ""
    raise InvalidParameter(
        'invalid mount config: must use either propagation mode "rslave" or "rshared" when '
        f'mount source is within the daemon root, daemon root: "{data_root}", bind mount '
        f'source: "{source}", propagation: "{propagation_given}"')
