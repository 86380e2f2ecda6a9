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


def mount_overlay(lower: list[str], upper: str, work: str, target: str) -> None:
    data = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if len(data) >= 4096:
        # The kernel takes at most one page of mount options.
        raise OSError(errno.E2BIG, "too many image layers for one overlay mount")
    mount("overlay", target, "overlay", 0, data)


def is_mountpoint(path: str) -> bool:
    """Something is mounted on `path` (a symlink is never a mount point).

    Its mount differs from its parent's, read from the kernel's fdinfo of
    an O_PATH descriptor: two small reads whatever the number of mounts
    (scanning /proc/self/mountinfo cost a start milliseconds with a few
    hundred containers' mounts on the host).  This also sees a directory
    bind-mounted on itself, which a device number comparison would not.
    """
    path = os.path.normpath(path)
    if path == "/":
        return True
    try:
        return _mount_id(path) != _mount_id(os.path.dirname(path))
    except OSError:
        return False


def _mount_id(path: str) -> int:
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(info, 4096)
        finally:
            os.close(info)
    finally:
        os.close(fd)
    for line in data.splitlines():
        if line.startswith(b"mnt_id:"):
            return int(line.split()[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


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
