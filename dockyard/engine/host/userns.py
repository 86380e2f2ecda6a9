"""User namespaces: the daemon option `userns-remap`.

With `"userns-remap": "default"` (or `"user[:group]"`) every container that
does not ask for `--userns host` runs in a new user namespace in which its
root is the first subordinate id of that user on the host (/etc/subuid,
/etc/subgid), so a process that escapes the container is an unprivileged
user.  `default` creates the system user `dockremap` and gives it a range,
as dockerd does.

The image layers are owned by host root; inside the user namespace host
root is unmapped, so every file would look like nobody's and root in the
container could write nothing.  Two ways to fix that:

* idmapped mounts (`mount_setattr` with MOUNT_ATTR_IDMAP, kernel >= 5.12,
  overlay over idmapped layers >= 5.19): no copy, but every start needs a
  user namespace fd to idmap with, one detached mount per layer, and
  teardown of those mounts on every path that unmounts a rootfs (remove,
  daemon restart, crash recovery) - code that lives in files other owners
  are changing, and a leak is a mount that pins a layer forever.
* a copy of each layer with its ids shifted, cached per mapping (what
  dockerd does: a separate layer tree per remapped root).  It costs disk
  and a copy on the first start of each image, and it works on any kernel
  and filesystem, and needs nothing at teardown: the overlay over the
  shifted copies is the same kind of mount as without remapping.

We take the shifted copy: the reliable one here, and simple enough to be
right.  The copy is `util.treecopy.copy_tree` (cp -a for trees of any depth:
overlay whiteouts, opaque xattrs, hardlinks), shifting owners as it goes,
into a temporary directory renamed into place, so a crash never leaves a
half-shifted layer in the cache.  The cache is the remapped root's and
root's only: its directories are 0710 root:<remapped root's group>, as
dockerd keeps its per-mapping root.

What the container writes lands in its upper dir with host ids (container
root = the remap root); `docker commit`/`docker diff`/`docker cp` need to
shift ids back (dockerd's archive code does so with the same mapping):
`shift_back` gives the mapping for that.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter, SystemError_
from dockyard.util.fstree import remove_quietly, remove_tree
from dockyard.util.treecopy import copy_tree

log = logging.getLogger("dockyard.userns")

DEFAULT_REMAP_USER = "dockremap"
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
# dockerd's default: one 65536-id range above the highest range in use, and
# never below 100000.
RANGE_SIZE = 65536
RANGE_FLOOR = 100000


@dataclass(frozen=True)
class IDRange:
    start: int
    size: int


@dataclass(frozen=True)
class IDMapping:
    """Container ids 0.. laid over the host ranges in order."""

    uid_ranges: tuple[IDRange, ...]
    gid_ranges: tuple[IDRange, ...]

    @property
    def root_uid(self) -> int:
        return self.uid_ranges[0].start

    @property
    def root_gid(self) -> int:
        return self.gid_ranges[0].start

    def key(self) -> str:
        return f"{self.root_uid}.{self.root_gid}"

    def spec_maps(self) -> tuple[list[Any], list[Any]]:
        """oci.spec IDMap lists for linux.uidMappings/gidMappings."""
        from dockyard.oci.spec import IDMap

        def maps(ranges: tuple[IDRange, ...]) -> list[Any]:
            out, inside = [], 0
            for r in ranges:
                out.append(IDMap(container_id=inside, host_id=r.start, size=r.size))
                inside += r.size
            return out

        return maps(self.uid_ranges), maps(self.gid_ranges)

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """A container id as the host sees it (overflow ids map to nobody)."""
        return _shift(uid, self.uid_ranges), _shift(gid, self.gid_ranges)

    def shift_back(self, uid: int, gid: int) -> tuple[int, int]:
        """A host id found in an upper dir, as the container sees it."""
        return _unshift(uid, self.uid_ranges), _unshift(gid, self.gid_ranges)


def _shift(cid: int, ranges: tuple[IDRange, ...]) -> int:
    inside = 0
    for r in ranges:
        if inside <= cid < inside + r.size:
            return r.start + cid - inside
        inside += r.size
    return 65534


def _unshift(hid: int, ranges: tuple[IDRange, ...]) -> int:
    inside = 0
    for r in ranges:
        if r.start <= hid < r.start + r.size:
            return inside + hid - r.start
        inside += r.size
    return 65534


# ---------------------------------------------------------------- /etc/subuid


def parse_subid(text: str, name: str, numeric: int | None) -> tuple[IDRange, ...]:
    """Ranges for a user (by name, or by its numeric id as shadow allows)."""
    out: list[IDRange] = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        owner, start, count = parts
        if owner == name or (numeric is not None and owner == str(numeric)):
            try:
                out.append(IDRange(int(start), int(count)))
            except ValueError:
                continue
    return tuple(sorted(out, key=lambda r: r.start))


def next_free_start(*texts: str) -> int:
    top = RANGE_FLOOR
    for text in texts:
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                top = max(top, int(parts[1]) + int(parts[2]))
    return top


def parse_remap_setting(value: str) -> tuple[str, str]:
    """`default` | `user` | `user:group` (names or numbers) -> (user, group)."""
    value = value.strip()
    if not value:
        raise InvalidParameter("userns-remap: empty value")
    if value == "default":
        return DEFAULT_REMAP_USER, DEFAULT_REMAP_USER
    user, _, group = value.partition(":")
    return user, group or user


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _ensure_default_user() -> None:
    """`default`: create dockremap and its ranges, as dockerd does (useradd
    and usermod, so /etc/passwd, /etc/shadow and /etc/sub[ug]id stay in the
    shadow tools' hands and their locks are honoured)."""
    try:
        pwd.getpwnam(DEFAULT_REMAP_USER)
    except KeyError:
        _run(["useradd", "--system", "--shell", "/bin/false", "--no-create-home",
              "--user-group", DEFAULT_REMAP_USER])
        log.info("userns-remap: created the system user %s", DEFAULT_REMAP_USER)
    uid = pwd.getpwnam(DEFAULT_REMAP_USER).pw_uid
    if not parse_subid(_read(SUBUID), DEFAULT_REMAP_USER, uid) or not parse_subid(
            _read(SUBGID), DEFAULT_REMAP_USER, uid):
        start = next_free_start(_read(SUBUID), _read(SUBGID))
        span = f"{start}-{start + RANGE_SIZE - 1}"
        args = ["usermod"]
        if not parse_subid(_read(SUBUID), DEFAULT_REMAP_USER, uid):
            args += ["--add-subuids", span]
        if not parse_subid(_read(SUBGID), DEFAULT_REMAP_USER, uid):
            args += ["--add-subgids", span]
        _run([*args, DEFAULT_REMAP_USER])
        log.info("userns-remap: gave %s the subordinate ids %s", DEFAULT_REMAP_USER, span)


def _run(args: list[str]) -> None:
    res = subprocess.run(args, capture_output=True, timeout=60, check=False)
    if res.returncode != 0:
        raise SystemError_(f"userns-remap: {' '.join(args)} failed: "
                           f"{res.stderr.decode(errors='replace').strip()}")


def resolve_mapping(setting: str) -> IDMapping:
    """Daemon start (in a thread): the mapping a `userns-remap` value means."""
    user, group = parse_remap_setting(setting)
    if user == DEFAULT_REMAP_USER and setting.strip() == "default":
        _ensure_default_user()
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise InvalidParameter(f"userns-remap: getent unable to find entry \"{user}\" in "
                               "passwd database") from None
    try:
        gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
    except KeyError:
        raise InvalidParameter(f"userns-remap: getent unable to find entry \"{group}\" in "
                               "group database") from None
    uids = parse_subid(_read(SUBUID), pw.pw_name, pw.pw_uid)
    if not uids:
        raise InvalidParameter(f"userns-remap: no subuid ranges found for user "
                               f"\"{pw.pw_name}\" in {SUBUID}")
    gids = parse_subid(_read(SUBGID), gr.gr_name, gr.gr_gid)
    if not gids:
        raise InvalidParameter(f"userns-remap: no subgid ranges found for group "
                               f"\"{gr.gr_name}\" in {SUBGID}")
    return IDMapping(uids, gids)


# ---------------------------------------------------------------- shifted layers


def check_traversable(data_root: Path) -> None:
    """The runtime reaches a container's rootfs as the remap root, so every
    directory above the data root must let others through (dockerd refuses
    to start in the same case)."""
    for p in [data_root.resolve(), *data_root.resolve().parents]:
        try:
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            raise InvalidParameter(
                f"userns-remap: a directory in the data root's path ({p}) restricts access "
                "to the remapped root uid/gid; please fix by allowing 'o+x' permissions on "
                "existing directories")


@dataclass
class UsernsRemap:
    """The daemon's remapping: which containers it applies to, their id
    mappings, and the shifted layer cache."""

    setting: str
    data_root: Path
    mapping: IDMapping | None = None
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def cache_root(self) -> Path:
        assert self.mapping is not None
        return self.data_root / "userns" / self.mapping.key() / "layers"

    async def setup(self) -> None:
        self.mapping = await asyncio.to_thread(resolve_mapping, self.setting)
        m = self.mapping
        log.info("userns-remap: container root is %d:%d on the host", m.root_uid, m.root_gid)
        await asyncio.to_thread(check_traversable, self.data_root)
        await asyncio.to_thread(self._prune_cache)

    def applies(self, host_config: dict[str, Any]) -> bool:
        return self.mapping is not None and (host_config.get("UsernsMode") or "") != "host"

    def spec_maps(self) -> tuple[list[Any], list[Any]]:
        assert self.mapping is not None
        return self.mapping.spec_maps()

    # ----------------------------------------------------------- rootfs
    async def prepare_layers(self, lower: list[str], container_dir: Path) -> list[str]:
        """Before the overlay mount: shifted lower dirs, and the container's
        own dirs owned (or at least traversable) by the remap root."""
        assert self.mapping is not None
        shifted = [await self._shifted_layer(Path(p)) for p in lower]
        await asyncio.to_thread(self._own_container_dir, container_dir)
        return shifted

    def own_files(self, files: list[Path]) -> None:
        """/etc/hostname, hosts, resolv.conf: root in the container may edit
        them, as in dockerd."""
        assert self.mapping is not None
        for f in files:
            try:
                os.chown(f, self.mapping.root_uid, self.mapping.root_gid)
            except FileNotFoundError:
                pass

    @staticmethod
    async def apply_net_sysctls(spec: dict[str, Any], netns: str) -> None:
        """net.* sysctls of a network namespace the daemon created.

        The netns belongs to the host's user namespace, so the runtime,
        which writes sysctls as root of the container's user namespace,
        gets EACCES.  (dockerd avoids this by letting the runtime create the
        netns inside the user namespace and configuring it from a hook.)
        The daemon still owns that netns, so it sets them itself, and the
        spec keeps the rest."""
        sysctl = spec.get("linux", {}).get("sysctl") or {}
        net = {k: v for k, v in sysctl.items() if k.startswith("net.")}
        if not net:
            return
        for k in net:
            del sysctl[k]
        if not sysctl:
            spec["linux"].pop("sysctl", None)
        args = [f"{k}={v}" for k, v in net.items()]
        proc = await asyncio.create_subprocess_exec(
            "nsenter", f"--net={netns}", "--", "sysctl", "-q", "-w", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidParameter(f"setting sysctls {', '.join(net)} in the container's "
                                   f"network namespace failed: "
                                   f"{err.decode(errors='replace').strip()}")

    @staticmethod
    def joined_user_ns(ns_paths: dict[str, str]) -> str | None:
        """Joining another container's pid/ipc/net namespace means joining its
        user namespace too (the namespaces belong to it)."""
        for kind in ("network", "pid", "ipc"):
            p = ns_paths.get(kind, "")
            if p.startswith("/proc/") and "/ns/" in p:
                return p.rsplit("/ns/", 1)[0] + "/ns/user"
        return None

    async def _shifted_layer(self, src: Path) -> str:
        # src is .../layers/<chain>/diff: the chain names the content
        key = src.parent.name
        dst = self.cache_root / key / "diff"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not dst.exists():
                await self._make_shifted(src, dst)
        return str(dst)

    async def _make_shifted(self, src: Path, dst: Path) -> None:
        assert self.mapping is not None
        tmp = dst.parent.with_name(dst.parent.name + ".tmp")
        await asyncio.to_thread(remove_tree, tmp)
        await asyncio.to_thread(self._private_dirs)
        tmp.mkdir(mode=0o700)
        try:
            await asyncio.to_thread(copy_tree, src, tmp / "diff", self.mapping.to_host)
            self._private(tmp)
        except OSError as e:
            await asyncio.to_thread(remove_quietly, tmp, "shifted layer copy")
            raise SystemError_(f"userns-remap: copying layer {src.parent.name[:12]} failed: "
                               f"{e.strerror or e}") from e
        os.rename(tmp, dst.parent)

    def _private(self, p: Path) -> None:
        """0710 root:<remapped root's group>: the remapped root may pass, no one else."""
        assert self.mapping is not None
        os.chown(p, 0, self.mapping.root_gid)
        os.chmod(p, 0o710)

    def _private_dirs(self) -> None:
        """The cache's directories, made or fixed (older versions left them 0711)."""
        root = self.cache_root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        userns_dir = self.data_root / "userns"
        # several mappings may share it: traversal only, each one's dir is private
        os.chmod(userns_dir, 0o711)
        for p in (root.parent, root):
            self._private(p)
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                self._private(entry)

    def _own_container_dir(self, d: Path) -> None:
        assert self.mapping is not None
        uid, gid = self.mapping.root_uid, self.mapping.root_gid
        # The runtime sets up the rootfs and the /etc bind mounts from inside
        # the user namespace, as the remap root: it must traverse every
        # parent (containers/ and the container's dir are 0710 root:root).
        for parent in (d.parent, d):
            st = os.stat(parent)
            if st.st_gid != gid:
                os.chown(parent, -1, gid)
        for sub in ("upper", "work"):
            p = d / sub
            st = os.stat(p)
            if st.st_uid != uid:
                # the upper dir's owner is the owner of / in the container
                os.chown(p, uid, gid)

    def _prune_cache(self) -> None:
        """Shifted copies of layers the image store no longer has."""
        root = self.cache_root
        if not root.exists():
            return
        layers = self.data_root / "images" / "layers"
        for entry in root.iterdir():
            if entry.name.endswith(".tmp") or not (layers / entry.name).exists():
                remove_quietly(entry, "shifted layer", unmount=True)
        self._private_dirs()
