"""Layer tarballs <-> overlay directories, safely.

`apply_layer_tar` unpacks one layer tar into an empty directory that will be
an overlay lowerdir.  The tar is hostile input: every path is resolved
component by component with dir fds and O_NOFOLLOW, so neither `..`, an
absolute name, nor a symlink planted earlier in the same tar can make us write
outside the layer root.  Symlink *targets* are stored verbatim (an absolute
`/bin/busybox` is meaningful inside the container) because we never follow
them while extracting.  Hardlinks must point at an entry already extracted
inside the root.

AUFS whiteouts, the tar convention Docker images use, become overlayfs'
native ones: `.wh.NAME` -> a 0/0 character device NAME, `.wh..wh..opq` ->
xattr trusted.overlay.opaque=y on the directory.   (Commit makes its
layer tar from the upper dir in engine/fs/commit.py.)

Runs synchronously; callers put it in a thread.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidParameter
from dockyard.util.safetar import SafeExtractor

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class LayerError(Exception):
    """The tar cannot be applied safely (or is not a tar at all)."""


class InvalidLayerTar(InvalidParameter, LayerError):
    """The layer data is not a readable tar: the client's fault (400), with the
    text dockerd's layer unpacker reports (Go's archive/tar wording)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Error processing tar file(exit status 1): {detail}")


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
    return InvalidLayerTar(_GO_TAR_ERRORS.get(text, text or type(e).__name__))


@dataclass
class ApplyResult:
    size: int = 0                      # bytes of regular files (hardlinks once)
    skipped: list[str] = field(default_factory=list)


def _clean_name(name: str) -> list[str]:
    """Split a tar member name into safe components; refuse `..` escapes."""
    parts: list[str] = []
    for comp in name.replace("\\", "/").split("/"):
        if comp in ("", "."):
            continue           # also neutralises absolute names: "/etc" -> "etc"
        if comp == "..":
            raise LayerError(f"invalid tar entry {name!r}: path escapes the layer root")
        parts.append(comp)
    return parts


class _LayerExtractor(SafeExtractor):
    """A layer tar into an empty directory: names cleaned of `..`, AUFS
    whiteouts made overlay ones, device nodes only when privileged."""

    log = log                       # this module's logger, not safetar's
    label = "layer"

    def __init__(self, root_fd: int, privileged: bool) -> None:
        super().__init__(root_fd, overlay_xattrs=True)
        self.privileged = privileged
        self.result = ApplyResult()

    def parent_not_dir(self, comps: list[str], comp: str) -> Exception:
        return LayerError(f"invalid tar entry {'/'.join(comps)!r}: "
                          f"parent {comp!r} is not a directory")

    def apply(self, tf: tarfile.TarFile) -> ApplyResult:
        for ti in tf:
            parts = _clean_name(ti.name)
            if not parts:
                if ti.isdir():
                    self.dir_meta.append(([], ti))
                continue
            base = parts[-1]
            if base == WHITEOUT_OPAQUE:
                dfd = self.open_parent(parts)
                try:
                    os.setxattr(dfd, OPAQUE_XATTR, b"y")
                finally:
                    os.close(dfd)
                continue
            if base.startswith(WHITEOUT_META_PREFIX):
                continue               # aufs hardlink/meta dirs: no meaning in overlay
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(parts[:-1] + [base[len(WHITEOUT_PREFIX):]])
                continue
            if (ti.ischr() or ti.isblk()) and not self.privileged:
                log.info("layer: skipping device node %s", "/".join(parts))
                self.result.skipped.append("/".join(parts))
                continue
            self.place(tf, ti, parts)
            if ti.isreg():
                self.result.size += ti.size
            elif ti.issym():
                self.result.size += len(os.fsencode(ti.linkname))  # as du: st_size
        self.finish_dirs()
        return self.result

    def _whiteout(self, parts: list[str]) -> None:
        dfd = self.open_parent(parts)
        try:
            self.remove(dfd, parts[-1], missing_ok=True)
            try:
                os.mknod(parts[-1], stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
            except PermissionError as e:
                raise LayerError("whiteouts need CAP_MKNOD (run as root)") from e
        finally:
            os.close(dfd)

    def hardlink(self, ti: tarfile.TarInfo, dfd: int, name: str, comps: list[str]) -> None:
        target = _clean_name(ti.linkname)
        if not target:
            raise LayerError(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}")
        try:
            sfd = self.open_parent(target, create=False)
        except FileNotFoundError as e:
            raise LayerError(
                f"invalid hardlink {ti.name!r}: target {ti.linkname!r} not in layer") from e
        try:
            os.link(target[-1], name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError as e:
            raise LayerError(
                f"invalid hardlink {ti.name!r}: target {ti.linkname!r} not in layer") from e
        finally:
            os.close(sfd)


def apply_layer_tar(tar_path: Path, dest: Path, privileged: bool = False) -> ApplyResult:
    """Unpack an (uncompressed or gzip) layer tar into the directory `dest`."""
    if os.path.getsize(tar_path) == 0:
        return ApplyResult()           # Go's tar reader: no data is an empty archive
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with tarfile.open(tar_path, mode="r|*") as tf:
            return _LayerExtractor(root_fd, privileged).apply(tf)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise invalid_layer_tar(e) from e
    finally:
        os.close(root_fd)
