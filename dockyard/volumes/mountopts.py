"""The `o=` option of a local volume as mount(2) takes it (moby/sys/mount).

`o=bind,ro` or `o=size=64m,uid=1000`: words that are mount flags become flag
bits, everything else is the file system's data string.  `mount_device`
then mounts as moby's mounter does: the flags without propagation first
(skipped for a plain remount), the propagation in a second call, and a
read-only bind remounted read-only (the kernel ignores MS_RDONLY on the
first bind call).  Errors carry moby's text, which users and scripts see
as `failed to mount local volume: mount SRC:DST, flags: 0x..., data: ...`.
"""

from __future__ import annotations

import errno
import os

from dockyard.util.mount import MNT_DETACH, mount, umount

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 0x10, 0x20, 0x40, 0x80
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 0x400, 0x800, 0x1000, 0x4000
MS_SILENT, MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE = 0x8000, 0x20000, 0x40000, 0x80000
MS_SHARED, MS_RELATIME, MS_STRICTATIME = 0x100000, 0x200000, 0x1000000

# word -> (clears the bit, bit)
FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID),
    "dev": (True, MS_NODEV), "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC), "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME), "noatime": (False, MS_NOATIME),
    "diratime": (True, MS_NODIRATIME), "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
    "unbindable": (False, MS_UNBINDABLE), "runbindable": (False, MS_UNBINDABLE | MS_REC),
    "private": (False, MS_PRIVATE), "rprivate": (False, MS_PRIVATE | MS_REC),
    "shared": (False, MS_SHARED), "rshared": (False, MS_SHARED | MS_REC),
    "slave": (False, MS_SLAVE), "rslave": (False, MS_SLAVE | MS_REC),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
}
_PTYPES = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE


def parse_options(options: str) -> tuple[int, str]:
    """(flags, data) of an fstab-style option list."""
    flags = 0
    data: list[str] = []
    for word in options.split(","):
        known = FLAGS.get(word)
        if known is not None and known[1] != 0:
            flags = flags & ~known[1] if known[0] else flags | known[1]
        else:
            data.append(word)
    return flags, ",".join(data)


class MountError(OSError):
    """A failed mount(2), in moby's words."""


def _fail(op: str, device: str, target: str, flags: int, data: str, e: OSError) -> MountError:
    src = f"{device}:" if device else ""
    text = f"{op} {src}{target}, flags: {flags:#x}"
    if data:
        text += f", data: {data}"
    reason = os.strerror(e.errno) if e.errno else str(e)
    return MountError(e.errno or errno.EINVAL, f"{text}: {reason.lower()}")


def mount_device(device: str, target: str, fstype: str, options: str) -> None:
    flags, data = parse_options(options)
    oflags = flags & ~_PTYPES
    remount = bool(flags & MS_REMOUNT) or device in ("", "none")
    if not remount or data:
        try:
            mount(device, target, fstype, oflags, data)
        except OSError as e:
            raise _fail("mount", device, target, oflags, data, e) from None
    if flags & _PTYPES:
        pflags = flags & (_PTYPES | MS_REC | MS_SILENT)
        try:
            mount("", target, "", pflags)
        except OSError as e:
            raise _fail("remount", "", target, pflags, "", e) from None
    if oflags & (MS_BIND | MS_RDONLY) == MS_BIND | MS_RDONLY:
        try:
            mount("", target, "", oflags | MS_REMOUNT)
        except OSError as e:
            raise _fail("remount-ro", "", target, oflags | MS_REMOUNT, "", e) from None


def unmount_device(target: str) -> None:
    umount(target, MNT_DETACH)
