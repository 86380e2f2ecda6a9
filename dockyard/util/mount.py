"""mount(2)/umount(2) through libc: no subprocess on the container start path."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

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


def mount_overlay(lower: list[str], upper: str, work: str, target: str) -> None:
    data = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(data) >= 4096:
        # The kernel takes at most one page of mount options.
        raise OSError(errno.E2BIG, "too many image layers for one overlay mount")
    mount("overlay", target, "overlay", 0, data)


_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_NO_AUTOMOUNT = 0x800
_STATX_ATTR_MOUNT_ROOT = 0x2000
_STATX_SIZE = 256                # struct statx; stx_attributes at 8, its mask at 56
_statx = getattr(_libc, "statx", None)
if _statx is not None:
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                       ctypes.c_void_p]


def is_mountpoint(path: str) -> bool:
    """Whether a mount's root is at `path` (a bind mount of the same
    filesystem too).  The kernel says so in one statx(2) call (Linux >=
    5.8); scanning /proc/self/mountinfo instead costs milliseconds on a
    host with a thousand mounts, once per check of every container start."""
    if _statx is not None:
        buf = ctypes.create_string_buffer(_STATX_SIZE)
        if _statx(_AT_FDCWD, os.fsencode(path), _AT_SYMLINK_NOFOLLOW | _AT_NO_AUTOMOUNT,
                  0, buf) == 0:
            attrs = int.from_bytes(buf.raw[8:16], sys.byteorder)
            mask = int.from_bytes(buf.raw[56:64], sys.byteorder)
            if mask & _STATX_ATTR_MOUNT_ROOT:
                return bool(attrs & _STATX_ATTR_MOUNT_ROOT)
        elif ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR):
            return False
    return _listed_as_mountpoint(path)


def _listed_as_mountpoint(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


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
