"""COPY and ADD into a writable layer, confined to the layer's root.

The rules are those of Docker's classic builder:

- the destination is relative to WORKDIR; symlinks on its path are followed
  inside the image's root (never out of it);
- a directory source copies its contents into the destination, which is
  made if missing;
- a file goes to `dest/<its name>` when the destination ends in `/` or is
  an existing directory, else to the destination itself; missing parents
  are made (0755);
- ADD of a local tar archive (plain, gzip, bzip2, xz) unpacks it into the
  destination, keeping the archive's owners;
- copied files belong to root, or to `--chown` (names looked up in the
  image's /etc/passwd and /etc/group, as are new parents); COPY --from
  keeps the owners of the stage's files; `--chmod` sets the mode of every
  entry copied.

Every write goes through `SafeExtractor` (one component at a time from a
directory fd, O_NOFOLLOW, nothing created through what was there), so a
symlink in the image or in the context cannot carry a write outside.
Runs synchronously; the builder calls it in a thread.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from dockyard.build import context as ctx
from dockyard.build.driver.receive import Context, Reader
from dockyard.build.pathmatch import clean
from dockyard.errors import InvalidParameter
from dockyard.util.cancel import CancelToken
from dockyard.util.safetar import DIR_FLAGS, SafeExtractor, open_dir_at

MAX_LINKS = 255
_OCTAL = re.compile(r"^[0-7]{1,4}$")


@dataclass
class CopyJob:
    name: str                        # "COPY" or "ADD"
    sources: list[ctx.Source]
    dest: str                        # absolute, a trailing "/" kept
    chown: str = ""
    chmod: str = ""
    keep_owner: bool = False         # COPY --from without --chown
    unpack: bool = False             # ADD: local archives are unpacked


def parse_chmod(text: str) -> int | None:
    if not text:
        return None
    if not _OCTAL.match(text):
        raise InvalidParameter(f"invalid chmod parameter {text!r}: give the mode in octal "
                               "(for example 0755)")
    return int(text, 8)


# ------------------------------------------------------------------ paths in the root

def resolve(root_fd: int, path: str) -> list[str]:
    """The components of `path` with every symlink followed inside the root
    (moby's FollowSymlinkInScope); the result may not exist."""
    todo = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            dfd = open_dir_at(root_fd, done)
        except OSError:
            done.append(part)
            continue
        try:
            st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
            target = os.readlink(part, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else None
        except OSError:
            target = None
        finally:
            os.close(dfd)
        if target is None:
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise InvalidParameter(f"too many links in {path}")
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p and p != "."] + todo
    return done


def _is_dir(root_fd: int, comps: list[str]) -> bool:
    if not comps:
        return True
    try:
        dfd = open_dir_at(root_fd, comps[:-1])
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.stat(comps[-1], dir_fd=dfd, follow_symlinks=False).st_mode)
    except OSError:
        return False
    finally:
        os.close(dfd)


def read_root_file(root_fd: int, path: str, limit: int = 4 << 20) -> str | None:
    comps = resolve(root_fd, path)
    if not comps:
        return None
    try:
        dfd = open_dir_at(root_fd, comps[:-1])
    except OSError:
        return None
    try:
        fd = os.open(comps[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(limit).decode("utf-8", "replace")


def _lookup(root_fd: int, name: str, file: str, kind: str) -> int:
    if re.fullmatch(r"[0-9]+", name):
        return int(name)
    text = read_root_file(root_fd, file)
    if text is None:
        raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: "
                               f"can't find {'uid' if kind == 'user' else 'gid'} for {kind} "
                               f"{name}: open {file}: no such file or directory")
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: can't "
                           f"find {'uid' if kind == 'user' else 'gid'} for {kind} {name}: "
                           f"no such {kind}: {name}")


def chown_ids(root_fd: int, chown: str) -> tuple[int, int]:
    """`--chown=user[:group]`: a lone user is its own group name, as Docker reads it."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidParameter("unable to convert uid/gid chown string to host mapping: "
                               f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return (_lookup(root_fd, user, "/etc/passwd", "user"),
            _lookup(root_fd, group, "/etc/group", "group"))


# ------------------------------------------------------------------ writing

class _Extractor(SafeExtractor):
    label = "build"

    def hardlink(self, ti: tarfile.TarInfo, dfd: int, name: str, comps: list[str]) -> None:
        target = [p for p in clean("/" + ti.linkname).split("/") if p]
        if not target:
            raise InvalidParameter(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}")
        tfd = open_dir_at(self.root_fd, target[:-1])
        try:
            st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(f"invalid hardlink {ti.name!r} -> {ti.linkname!r}")
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(tfd)


class _Files:
    """Hands `SafeExtractor` the data of the member being placed."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.current: ctx.Entry | None = None

    def extractfile(self, ti: tarfile.TarInfo) -> Reader | None:
        if self.current is None or self.current.kind != ctx.FILE:
            return None
        return self.context.open_data(self.current)


_TYPES = {ctx.FILE: tarfile.REGTYPE, ctx.DIR: tarfile.DIRTYPE, ctx.SYMLINK: tarfile.SYMTYPE,
          ctx.FIFO: tarfile.FIFOTYPE}


def _info(e: ctx.Entry, name: str, ids: tuple[int, int] | None, mode: int | None
          ) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = _TYPES[e.kind]
    ti.size = e.size if e.kind == ctx.FILE else 0
    ti.mode = mode if mode is not None and e.kind != ctx.SYMLINK else e.mode
    ti.uid, ti.gid = ids if ids is not None else (e.uid, e.gid)
    ti.mtime = e.mtime
    ti.linkname = e.linkname
    return ti


def _mkdirs(root_fd: int, comps: list[str], owner: tuple[int, int]) -> int:
    """An fd of root/comps, making what is missing (0755, `owner`)."""
    def make(dfd: int, name: str) -> None:
        os.mkdir(name, 0o755, dir_fd=dfd)
        os.chown(name, *owner, dir_fd=dfd, follow_symlinks=False)

    try:
        return open_dir_at(root_fd, comps, DIR_FLAGS, mkdir=make)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            raise InvalidParameter(f"failed to copy files: mkdir /{'/'.join(comps)}: not a "
                                   "directory") from None
        raise


def copy_into(root: Path, job: CopyJob, context: Context, cancel: CancelToken | None = None
              ) -> None:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = chown_ids(root_fd, job.chown) if job.chown else None
        mode = parse_chmod(job.chmod)
        new_owner = ids or (0, 0)
        for src in job.sources:
            _copy_one(root_fd, job, src, context, ids, mode, new_owner, cancel)
    finally:
        os.close(root_fd)


def _copy_one(root_fd: int, job: CopyJob, src: ctx.Source, context: Context,
              ids: tuple[int, int] | None, mode: int | None, new_owner: tuple[int, int],
              cancel: CancelToken | None) -> None:
    owner = None if (job.keep_owner and ids is None) else (ids or (0, 0))
    dest = resolve(root_fd, job.dest)
    entry = src.entry
    if entry.kind == ctx.DIR:
        existed = _is_dir(root_fd, dest)
        dfd = _mkdirs(root_fd, dest, new_owner)
        try:
            if not existed:
                os.fchmod(dfd, mode if mode is not None else 0o755)
                os.fchown(dfd, *(owner or (entry.uid, entry.gid)))
            _write_tree(dfd, context, entry, owner, mode, cancel)
        finally:
            os.close(dfd)
        return
    if job.unpack and entry.kind == ctx.FILE and _is_archive(context, entry):
        dfd = _mkdirs(root_fd, dest, new_owner)
        try:
            _unpack(dfd, context, entry, cancel)
        finally:
            os.close(dfd)
        return
    base = src.path.rsplit("/", 1)[-1] or entry.name
    if job.dest.endswith("/") or _is_dir(root_fd, dest):
        target = [*dest, base]
    else:
        target = dest
    if not target:
        raise InvalidParameter(f"{job.name} failed: cannot copy a file onto the root")
    dfd = _mkdirs(root_fd, target[:-1], new_owner)
    try:
        with _Extractor(dfd, cancel=cancel) as ex:
            files = _Files(context)
            files.current = entry
            ex.place(cast(tarfile.TarFile, files), _info(entry, target[-1], owner, mode),
                     [target[-1]])
            ex.finish_dirs()
    finally:
        os.close(dfd)


def _write_tree(dfd: int, context: Context, top: ctx.Entry, owner: tuple[int, int] | None,
                mode: int | None, cancel: CancelToken | None) -> None:
    prefix = len(top.path) + 1 if top.path else 0
    files = _Files(context)
    with _Extractor(dfd, cancel=cancel, new_parent_owner=owner or (0, 0)) as ex:
        for e in ctx.ContextTree().walk(top):
            if e is top:
                continue
            rel = e.path[prefix:]
            files.current = e
            ex.place(cast(tarfile.TarFile, files), _info(e, rel, owner, mode), rel.split("/"))
        ex.finish_dirs()


# ------------------------------------------------------------------ ADD of archives

def _is_archive(context: Context, entry: ctx.Entry) -> bool:
    """As dockerd's IsArchivePath: it decompresses and has a tar header."""
    f = context.open_data(entry)
    try:
        with tarfile.open(fileobj=cast(Any, _Stream(f)), mode="r|*") as tf:
            return tf.next() is not None
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return False
    finally:
        f.close()


class _Stream:
    def __init__(self, f: Reader) -> None:
        self.f = f

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)


class _Unpacker(_Extractor):
    label = "ADD"


def _unpack(dfd: int, context: Context, entry: ctx.Entry, cancel: CancelToken | None) -> None:
    f = context.open_data(entry)
    try:
        with tarfile.open(fileobj=cast(Any, _Stream(f)), mode="r|*") as tf, \
                _Unpacker(dfd, cancel=cancel) as ex:
            for ti in tf:
                try:
                    name = ctx.clean_member_name(ti.name)
                except ctx.ContextError:
                    raise InvalidParameter(f"failed to copy files: {ti.name!r} is outside of "
                                           "the destination") from None
                if not name:
                    continue
                if ti.ischr() or ti.isblk():
                    continue
                ex.place(tf, ti, name.split("/"))
            ex.finish_dirs()
    except tarfile.TarError as e:
        raise InvalidParameter(f"failed to copy files: {e}") from None
    finally:
        f.close()


def make_workdir(root: Path, path: str) -> None:
    """WORKDIR's directory, made if missing (0755, root's)."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(_mkdirs(root_fd, resolve(root_fd, path), (0, 0)))
    finally:
        os.close(root_fd)


Opener = Callable[[ctx.Entry], Reader]
