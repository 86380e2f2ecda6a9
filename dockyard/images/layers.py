"""Layer tarballs <-> overlay directories, safely.

`apply_layer_tar` unpacks one layer tar into an empty directory that will be
an overlay lowerdir.  The tar is hostile input.  Names are cleaned as dockerd
cleans them when it unpacks a layer chrooted into its root (`..` stops at
the root, so `../x` is `/x`); every path is then resolved component by
component with dir fds and O_NOFOLLOW, so neither a symlink planted earlier
in the same tar nor anything else can make us write outside the layer root.
Symlink *targets* are stored verbatim (an absolute `/bin/busybox` is
meaningful inside the container) because we never follow them while
extracting.  Hardlinks must point at an entry already extracted inside the
root.

AUFS whiteouts, the tar convention Docker images use, become overlayfs'
native ones: `.wh.NAME` -> a 0/0 character device NAME, `.wh..wh..opq` ->
xattr trusted.overlay.opaque=y on the directory.  A whiteout names one
entry of its own directory: `.wh.`, `.wh..` and `.wh...` name none, and are
refused as dockerd refuses them.  (Commit makes its layer tar from the upper
dir in engine/fs/commit.py.)

Whatever the tar does wrong is the client's fault: a 400 with dockerd's
wording (`Error processing tar file(exit status 1): ...`), never an
exception name; only the host's own failures (no space, I/O errors) are not.

Runs synchronously; callers put it in a thread.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dockyard.errors import InvalidParameter, SystemError_
from dockyard.util.cancel import CancelToken, check
from dockyard.util.safetar import SafeExtractor

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class LayerError(InvalidParameter):
    """The tar cannot be applied safely, or is not a tar at all: the
    client's fault (400), with the text dockerd's layer unpacker reports."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Error processing tar file(exit status 1): {detail}")


class InvalidLayerTar(LayerError):
    """The layer data is not a readable tar (Go's archive/tar wording)."""


# errors an entry of the tar can cause; any other is the host's
_CLIENT_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EEXIST,
                            errno.ENOENT, errno.EINVAL, errno.EPERM, errno.EISDIR,
                            errno.ENOTEMPTY, errno.EMLINK, errno.EXDEV})


def _go_error(op: str, path: str, e: OSError) -> LayerError:
    """Go's *PathError text: "open /a/b: not a directory"."""
    reason = os.strerror(e.errno or 0)
    return LayerError(f"{op} {path}: {reason[:1].lower()}{reason[1:]}")


# Python's tarfile wording -> Go's archive/tar wording
_GO_TAR_ERRORS = {"truncated header": "unexpected EOF", "unexpected end of data": "unexpected EOF",
                  "invalid header": "archive/tar: invalid tar header",
                  "bad checksum": "archive/tar: invalid tar header",
                  "empty header": "archive/tar: invalid tar header"}


def invalid_layer_tar(e: BaseException) -> InvalidLayerTar:
    """The client-facing error for unreadable layer data (tar or decompression)."""
    if isinstance(e, EOFError):
        return InvalidLayerTar("unexpected EOF")
    text = str(e)
    return InvalidLayerTar(_GO_TAR_ERRORS.get(text, text or "archive/tar: invalid tar header"))


@dataclass
class ApplyResult:
    size: int = 0                      # bytes of regular files (hardlinks once)
    skipped: list[str] = field(default_factory=list)


def _clean_name(name: str) -> list[str]:
    """The components of Go's filepath.Clean("/" + name): `.` and empty ones
    dropped, `..` never above the root."""
    parts = [c for c in name.split("/") if c and c != "."]
    if ".." not in parts:
        return parts
    out: list[str] = []
    for c in parts:
        if c != "..":
            out.append(c)
        elif out:
            out.pop()
    return out


def _abs(parts: list[str]) -> str:
    return "/" + "/".join(parts)


class _LayerExtractor(SafeExtractor):
    """A layer tar into an empty directory: names cleaned of `..`, AUFS
    whiteouts made overlay ones, device nodes only when privileged."""

    log = log                       # this module's logger, not safetar's
    label = "layer"

    def __init__(self, root_fd: int, privileged: bool, cancel: CancelToken | None) -> None:
        super().__init__(root_fd, overlay_xattrs=True, cancel=cancel)
        self.privileged = privileged
        self.result = ApplyResult()

    def parent_not_dir(self, comps: list[str], comp: str) -> Exception:
        return LayerError(f"open {_abs(comps)}: not a directory")

    def apply(self, tf: tarfile.TarFile) -> ApplyResult:
        for ti in tf:
            check(self.cancel)
            if "\0" in ti.name or "\0" in ti.linkname:
                # Go's tar reader refuses a NUL in a PAX path or linkpath
                raise InvalidLayerTar("archive/tar: invalid tar header")
            parts = _clean_name(ti.name)
            if not parts:
                if ti.isdir():
                    self.dir_meta.append(([], ti))
                continue
            try:
                self._apply_one(tf, ti, parts)
            except OSError as e:
                if e.errno not in _CLIENT_ERRNOS:
                    raise              # the host's failure, not the tar's
                raise _go_error("open", _abs(parts), e) from e
        self.finish_dirs()
        return self.result

    def _apply_one(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, parts: list[str]) -> None:
        base = parts[-1]
        if base == WHITEOUT_OPAQUE:
            dfd = self.open_parent(parts)
            try:
                os.setxattr(dfd, OPAQUE_XATTR, b"y")
            finally:
                os.close(dfd)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return                     # aufs hardlink/meta dirs: no meaning in overlay
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts[:-1], base[len(WHITEOUT_PREFIX):])
            return
        if (ti.ischr() or ti.isblk()) and not self.privileged:
            log.info("layer: skipping device node %s", "/".join(parts))
            self.result.skipped.append("/".join(parts))
            return
        self.place(tf, ti, parts)
        if ti.isreg():
            self.result.size += ti.size
        elif ti.issym():
            self.result.size += len(os.fsencode(ti.linkname))  # as du: st_size

    def _whiteout(self, parent: list[str], target: str) -> None:
        if target in ("", ".", ".."):
            # names no entry of this directory: dockerd's unpacker fails on
            # the directory it would name, as here
            where = _clean_name("/".join([*parent, target]))
            raise LayerError(f'failed to mknod("{_abs(where)}", S_IFCHR, 0): file exists')
        parts = [*parent, target]
        dfd = self.open_parent(parts)
        try:
            self.remove(dfd, target, missing_ok=True)
            try:
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
            except PermissionError as e:
                raise SystemError_("layer whiteouts need CAP_MKNOD (run as root)") from e
        finally:
            os.close(dfd)

    def hardlink(self, ti: tarfile.TarInfo, dfd: int, name: str, comps: list[str]) -> None:
        target = _clean_name(ti.linkname)
        where = f"link {_abs(target)} {_abs(comps)}"
        if not target:
            raise LayerError(f"{where}: operation not permitted")
        try:
            sfd = self.open_parent(target, create=False)
        except (FileNotFoundError, LayerError) as e:
            raise LayerError(f"{where}: no such file or directory") from e
        try:
            os.link(target[-1], name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        except OSError as e:
            if e.errno not in _CLIENT_ERRNOS:
                raise
            raise _go_error("link", f"{_abs(target)} {_abs(comps)}", e) from e
        finally:
            os.close(sfd)


def apply_layer_tar(tar_path: Path, dest: Path, privileged: bool = False,
                    cancel: CancelToken | None = None,
                    wrap: Callable[[IO[bytes]], IO[bytes]] | None = None) -> ApplyResult:
    """Unpack an (uncompressed or gzip) layer tar into the directory `dest`;
    `wrap` may wrap the file as it is read (a progress reader)."""
    if os.path.getsize(tar_path) == 0:
        return ApplyResult()           # Go's tar reader: no data is an empty archive
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with open(tar_path, "rb") as raw, \
                tarfile.open(fileobj=wrap(raw) if wrap else raw, mode="r|*") as tf, \
                _LayerExtractor(root_fd, privileged, cancel) as ex:
            return ex.apply(tf)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise invalid_layer_tar(e) from e
    finally:
        os.close(root_fd)
