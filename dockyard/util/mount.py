"""mount(2)/umount(2) through libc: no subprocess on the container start path."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {fstype or ''} on {target}: {os.strerror(e)}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """Unmount; a path that is not mounted (or gone) is not an error."""
    if _libc.umount2(_b(target), flags) != 0:
        e = ctypes.get_errno()
        if e in (errno.EINVAL, errno.ENOENT):
            return
        raise OSError(e, f"umount {target}: {os.strerror(e)}")


OPTIONS_MAX = 4095        # the kernel takes one page of mount options, its NUL included


def mount_overlay(lower: list[str], upper: str | None, work: str | None, target: str,
                  flags: int = 0) -> None:
    """Mount an overlay of `lower` (top layer first) with `upper` and
    `work`, or a read-only one of `lower` alone (`upper` and `work` None).

    Every directory is opened and named by its descriptor
    (`/proc/self/fd/N`, which the kernel resolves when it mounts), as
    dockerd's overlay2 names layers by short links.  The options then stay
    short in the mount table, which every runtime call reads (with full
    paths a container's line is about 580 bytes, and the table of 500
    running containers 315 KB), and an image of many layers fits one page
    of options (full paths fill it at about 38 layers): up to about 220
    layers, below overlayfs's own limit of 500."""
    dirs = [*lower, *((upper, work) if upper is not None and work is not None else ())]
    fds: list[int] = []
    try:
        for d in dirs:
            fds.append(os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        names = [f"/proc/self/fd/{fd}" for fd in fds]
        n = len(lower)
        data = _overlay_options(names[:n], *(names[n:] if len(names) > n else (None, None)))
        if len(data) > OPTIONS_MAX:
            raise OSError(errno.E2BIG, f"too many image layers for one overlay mount "
                                       f"({len(lower)})")
        mount("overlay", target, "overlay", flags, data)
    finally:
        for fd in fds:
            os.close(fd)


def _overlay_options(lower: list[str], upper: str | None, work: str | None) -> str:
    data = f"lowerdir={':'.join(lower)}"
    if upper is not None and work is not None:
        data += f",upperdir={upper},workdir={work}"
    return data


# statx(2): the kernel says whether a path is the root of a mount (5.8 on),
# in one system call however many mounts the host has
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_NO_AUTOMOUNT = 0x800
_STATX_ATTR_MOUNT_ROOT = 0x2000
_STATX_SIZE = 256
_statx = getattr(_libc, "statx", None)
if _statx is not None:
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                       ctypes.c_char_p]
_AT_FDCWD = -100


def _statx_mount_root(path: str) -> bool | None:
    """Whether `path` (not following a final symlink) is a mount's root;
    None where statx cannot say (no such call, or an older kernel)."""
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(_AT_FDCWD, os.fsencode(path), _AT_SYMLINK_NOFOLLOW | _AT_NO_AUTOMOUNT, 0,
              buf) != 0:
        e = ctypes.get_errno()
        if e in (errno.ENOSYS, errno.EPERM):
            return None
        return False                  # missing, or not reachable: not mounted
    attributes = int.from_bytes(buf.raw[8:16], "little")
    supported = int.from_bytes(buf.raw[56:64], "little")
    if not supported & _STATX_ATTR_MOUNT_ROOT:
        return None
    return bool(attributes & _STATX_ATTR_MOUNT_ROOT)


def mountinfo_has(path: str) -> bool:
    """The same question through /proc/self/mountinfo (every mount read)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(unescape_mountinfo(line.split()[4]) == path for line in f)
    except OSError:
        return False


def is_mountpoint(path: str) -> bool:
    root = _statx_mount_root(path)
    return mountinfo_has(path) if root is None else root


def unescape_mountinfo(s: str) -> str:
    """A path field of /proc/*/mountinfo, whose space, tab, newline and
    backslash are escaped as \\ooo octal."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        code = s[i + 1:i + 4]
        if s[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)
