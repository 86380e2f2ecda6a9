"""Tar streams out of, and safely into, a container's filesystem.

Writing: entries are serialised by hand (PAX headers from `tarfile`, bodies
read in chunks), so a large file never sits in memory and the stream ends
with exactly two zero blocks (an empty layer then has Docker's empty-tar
digest).  Walking is `fstree.TreeWalk`: iterative, one directory fd at a
time whatever the depth, never following symlinks nor entering another
mount; a regular file is opened only once it is known to be one (a device
node or fifo a container swaps in is never opened), and a tree a running
container rearranges meanwhile ends the walk early with a valid archive.

Reading (`docker cp` uploads): every entry is placed relative to a
destination inside the container root; parent directories are resolved with
`paths.resolve` (symlinks evaluated inside the root, as moby's chrooted
untar would) and opened component by component with O_NOFOLLOW, so neither a
hostile archive (`..`, absolute or relative symlinks, hardlinks) nor a racing
container process can make us write outside the root.

Runs synchronously; callers put it in a thread.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from dockyard.engine.fs.paths import components, open_dir, resolve
from dockyard.errors import InvalidParameter, SystemError_
from dockyard.oci.users import parse_group, parse_passwd
from dockyard.util.fstree import DIR, MOUNT, POST, TreeChanged, TreeWalk, open_regular
from dockyard.util.safetar import XATTR_PAX_PREFIX, SafeExtractor
from dockyard.util.tarfeed import open_tar_stream

log = logging.getLogger(__name__)

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
END_OF_ARCHIVE = b"\0" * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# skip(container_path) -> True leaves the entry (and what is below it) out
SkipFn = Callable[[str], bool]


def header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


@dataclass(frozen=True)
class OwnerNames:
    """uid -> user name and gid -> group name (the first entry of each id)."""

    users: dict[int, str]
    groups: dict[int, str]

    @classmethod
    def parse(cls, passwd: str, group: str) -> OwnerNames:
        users: dict[int, str] = {}
        groups: dict[int, str] = {}
        for u in parse_passwd(passwd):
            users.setdefault(u.uid, u.name)
        for g in parse_group(group):
            groups.setdefault(g.gid, g.name)
        return cls(users, groups)


@dataclass
class TarStreamer:
    """Serialises a directory tree; one instance per archive (hardlink memory)."""

    # commit keeps every xattr but overlay's own; export and cp, as moby,
    # only file capabilities
    all_xattrs: bool = False
    # commit: overlay whiteouts / opaque dirs become `.wh.` entries
    overlay_whiteouts: bool = False
    skip: SkipFn | None = None
    # keep_dir(container_path, stat) -> False: the directory's header is held
    # back until something below it is written (commit: a directory copied up
    # only because the runtime put a mount point in it is no change)
    keep_dir: Callable[[str, os.stat_result], bool] | None = None
    # export: container paths Docker's init layer holds as empty 0755 files
    # (bind-mount targets); whatever the runtime left there is shown as those
    init_files: frozenset[str] = frozenset()
    # export and cp: owner names as the container's /etc/passwd and
    # /etc/group give them (dockerd archives chrooted into the container, so
    # Go's tar looks them up there); commit leaves them empty
    names: OwnerNames | None = None
    # a tree rearranged under the walk: export and cp end their archive there
    # (a running container may do that); a commit must not keep half a layer
    partial_ok: bool = True
    # cp with the container's volumes bound in the view: walk into them
    one_mount: bool = True
    _links: dict[tuple[int, int], str] = field(default_factory=dict)
    _pending: list[bytes] = field(default_factory=list)

    def _flush(self) -> Iterator[bytes]:
        if self._pending:
            yield from self._pending
            self._pending.clear()

    def _xattrs(self, ti: tarfile.TarInfo, fd: int) -> None:
        try:
            names = os.listxattr(fd)
        except OSError:
            return
        for attr in names:
            if attr.startswith("trusted.overlay."):
                continue
            if not self.all_xattrs and attr != "security.capability":
                continue
            try:
                val = os.getxattr(fd, attr)
            except OSError:
                continue
            ti.pax_headers = {**ti.pax_headers,
                              XATTR_PAX_PREFIX + attr: val.decode("utf-8", "surrogateescape")}

    def _info(self, st: os.stat_result, arcname: str) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(arcname)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.mtime = int(st.st_mtime)       # moby truncates to seconds
        ti.uname = ti.gname = ""
        if self.names is not None:
            ti.uname = self.names.users.get(st.st_uid, "")
            ti.gname = self.names.groups.get(st.st_gid, "")
        return ti

    def entry_tree(self, parent_fd: int, name: str, arcname: str, cpath: str
                   ) -> Iterator[bytes]:
        """The entry `name` in `parent_fd` and, for a directory, all below it."""
        if self.skip is not None and self.skip(cpath):
            return
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return                      # gone while we walked (a live container)
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    return              # replaced while we walked
                raise
            try:
                yield from self.dir_tree(fd, arcname, cpath, os.fstat(fd))
            finally:
                os.close(fd)
            return
        yield from self._leaf(parent_fd, name, arcname, cpath, st)

    def _leaf(self, parent_fd: int, name: str, arcname: str, cpath: str,
              st: os.stat_result) -> Iterator[bytes]:
        if cpath in self.init_files:
            yield from self._flush()
            ti = self._info(st, arcname)
            ti.type, ti.mode, ti.size = tarfile.REGTYPE, 0o755, 0
            yield header(ti)
            return
        yield from self._non_dir(parent_fd, name, arcname, st)

    def _dir_headers(self, fd: int, prefix: str, cpath: str, st: os.stat_result
                     ) -> Iterator[bytes]:
        ti = self._info(st, prefix)
        ti.type = tarfile.DIRTYPE
        self._xattrs(ti, fd)
        hdrs = [header(ti)]
        opaque = self.overlay_whiteouts and is_opaque(fd)
        if opaque:
            wo = self._info(st, prefix + WHITEOUT_OPAQUE)
            wo.mode, wo.mtime = 0o644, 0
            hdrs.append(header(wo))
        if opaque or self.keep_dir is None or self.keep_dir(cpath, st):
            yield from self._flush()
            yield from hdrs
        else:
            self._pending.extend(hdrs)

    def dir_tree(self, fd: int, arcname: str, cpath: str, st: os.stat_result | None = None,
                 include_self: bool = True) -> Iterator[bytes]:
        st = st or os.fstat(fd)
        prefix = "" if arcname in ("", "/") else arcname.rstrip("/") + "/"
        base = cpath.rstrip("/")
        # per directory being written: where its held-back headers start in
        # _pending (None: skipped), dropped when nothing below it was written
        marks: list[int | None] = [len(self._pending)]
        if include_self and prefix:
            yield from self._dir_headers(fd, prefix, cpath, st)
        walk = TreeWalk(fd, sort=True, one_mount=self.one_mount)
        try:
            for e in walk:
                if e.kind == POST:
                    mark = marks.pop()
                    if mark is not None:
                        del self._pending[mark:]
                    continue
                rel = "/".join(walk.path) if e.kind == DIR else walk.path_of(e.name)
                child = f"{base}/{rel}"
                if self.skip is not None and self.skip(child):
                    if e.kind == DIR:
                        walk.prune()
                        marks.append(None)
                    continue
                if e.kind == DIR:
                    marks.append(len(self._pending))
                    yield from self._dir_headers(e.fd, prefix + rel + "/", child, e.st)
                elif e.kind == MOUNT:
                    # another filesystem: shown as an empty directory, never entered
                    yield from self._flush()
                    ti = self._info(e.st, prefix + rel + "/")
                    ti.type = tarfile.DIRTYPE
                    yield header(ti)
                else:
                    yield from self._leaf(e.fd, e.name, prefix + rel, child, e.st)
        except TreeChanged as err:
            if not self.partial_ok:
                raise
            log.info("fsops: %s: %s; the archive ends here", cpath, err)
        del self._pending[marks[0] or 0:]

    def _non_dir(self, parent_fd: int, name: str, arcname: str, st: os.stat_result
                 ) -> Iterator[bytes]:
        if not stat.S_ISSOCK(st.st_mode):
            yield from self._flush()
        if self.overlay_whiteouts and is_whiteout(st):
            d, _, base = arcname.rpartition("/")
            wo = self._info(st, (d + "/" if d else "") + WHITEOUT_PREFIX + base)
            wo.mode = stat.S_IMODE(st.st_mode)
            yield header(wo)
            return
        ti = self._info(st, arcname)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFLNK:
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(name, dir_fd=parent_fd)
            yield header(ti)
            return
        if fmt in (stat.S_IFCHR, stat.S_IFBLK):
            ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield header(ti)
            return
        if fmt == stat.S_IFIFO:
            ti.type = tarfile.FIFOTYPE
            yield header(ti)
            return
        if fmt != stat.S_IFREG:
            return                      # sockets: not archivable (as moby)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            first = self._links.get(key)
            if first is not None:
                ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, first, 0
                yield header(ti)
                return
        fd = open_regular(parent_fd, name, st)
        if fd is None:
            return                      # replaced while we walked a live container
        if st.st_nlink > 1:
            self._links[key] = arcname
        try:
            self._xattrs(ti, fd)
            ti.size = st.st_size
            yield header(ti)
            remaining = st.st_size
            while remaining > 0:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    # the file shrank under a live container: keep the tar valid
                    log.info("fsops: %s shrank while archived", arcname)
                    chunk = b"\0" * min(CHUNK, remaining)
                remaining -= len(chunk)
                yield chunk
            yield b"\0" * (-st.st_size % 512)
        finally:
            os.close(fd)


# -- extraction ------------------------------------------------------------------


class BreakoutError(InvalidParameter):
    """An archive entry that would land outside the extraction directory."""


@dataclass
class ExtractOptions:
    no_overwrite_dir_non_dir: bool = False
    chown: tuple[int, int] | None = None     # copyUIDGID with a container user


def _lexical(dest: list[str], name: str) -> list[str] | None:
    """dest + name cleaned lexically; None if it climbs out of dest."""
    out = list(dest)
    for comp in components(name):
        if comp == ".":
            continue
        if comp == "..":
            if len(out) <= len(dest):
                return None
            out.pop()
            continue
        out.append(comp)
    return out


class _CopyExtractor(SafeExtractor):
    """A `docker cp` upload below `dest`: members and relative symlink targets
    may not climb out of it, parents are found with symlinks evaluated inside
    the container root, new parent directories belong to root."""

    log = log                       # this module's logger, not safetar's
    label = "cp"

    def __init__(self, root_fd: int, dest: list[str], opts: ExtractOptions) -> None:
        super().__init__(root_fd, owner=opts.chown, new_parent_owner=(0, 0))
        self.dest = dest
        self.opts = opts

    def cpath(self, comps: list[str]) -> str:
        return "/" + "/".join(comps)

    def parent_components(self, comps: list[str]) -> list[str]:
        return resolve(self.root_fd, self.cpath(comps[:-1]), True)

    def parent_not_dir(self, comps: list[str], comp: str) -> Exception:
        return InvalidParameter(f"cannot extract {self.cpath(comps)}: parent is not a directory")

    def run(self, stream: IO[bytes]) -> None:
        try:
            with open_tar_stream(stream) as tf:
                for ti in tf:
                    if "\0" in ti.name or "\0" in ti.linkname:
                        raise InvalidParameter("invalid tar archive: archive/tar: invalid tar "
                                               "header")
                    comps = _lexical(self.dest, ti.name)
                    if comps is None:
                        raise BreakoutError(
                            f"{ti.name!r} is outside of {self.cpath(self.dest)!r}")
                    if len(comps) > len(self.dest):   # the destination itself: left as is
                        self.place(tf, ti, comps)
        except tarfile.TarError as e:
            raise InvalidParameter(f"invalid tar archive: {e}") from e
        self.finish_dirs()

    def check_replace(self, comps: list[str], ti: tarfile.TarInfo, existing_is_dir: bool
                      ) -> None:
        if self.opts.no_overwrite_dir_non_dir and existing_is_dir and not ti.isdir():
            raise InvalidParameter(
                f"cannot overwrite directory {self.cpath(comps)!r} with non-directory "
                f"{self.cpath(self.dest)!r}")
        if self.opts.no_overwrite_dir_non_dir and not existing_is_dir and ti.isdir():
            raise InvalidParameter(
                f"cannot overwrite non-directory {self.cpath(comps)!r} with directory "
                f"{self.cpath(self.dest)!r}")

    def check_symlink(self, ti: tarfile.TarInfo, comps: list[str]) -> None:
        # moby's rule: a relative target may not climb out of the extraction dir
        if not ti.linkname.startswith("/") and _lexical(
                self.dest, "/".join(comps[len(self.dest):-1] + [ti.linkname])) is None:
            raise BreakoutError(f"invalid symlink {self.cpath(comps)!r} -> {ti.linkname!r}")

    def hardlink(self, ti: tarfile.TarInfo, dfd: int, name: str, comps: list[str]) -> None:
        target = _lexical(self.dest, ti.linkname)
        if target is None or len(target) == len(self.dest):
            raise BreakoutError(f"invalid hardlink {self.cpath(comps)!r} -> {ti.linkname!r}")
        parent = resolve(self.root_fd, self.cpath(target[:-1]), True)
        try:
            sfd = open_dir(self.root_fd, parent)
        except OSError as e:
            raise InvalidParameter(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}") from e
        try:
            st = os.stat(target[-1], dir_fd=sfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}")
            os.link(target[-1], name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError as e:
            raise InvalidParameter(
                f"invalid hardlink {ti.name!r}: target {ti.linkname!r} not found") from e
        finally:
            os.close(sfd)


# what an archive entry (or the container changing the tree meanwhile) can
# cause; any other failure is the host's
_CLIENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EEXIST,
                            errno.ENOTEMPTY, errno.EISDIR, errno.ENAMETOOLONG, errno.EINVAL,
                            errno.EMLINK, errno.EXDEV, errno.ESTALE, errno.EPERM})


def extract(root_fd: int, dest: list[str], stream: IO[bytes], opts: ExtractOptions) -> None:
    try:
        with _CopyExtractor(root_fd, dest, opts) as ex:
            ex.run(stream)
    except OSError as e:
        text = f"extracting archive: {e.strerror or e}"
        if e.errno in _CLIENT_ERRNOS:
            raise InvalidParameter(text) from e
        raise SystemError_(text) from e
