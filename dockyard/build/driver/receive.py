"""Receiving a build context: the request body -> a spool file and its tree.

The body is a tar, plain or compressed with gzip, bzip2 or xz (found by
its first bytes, as dockerd's DecompressStream finds it); it is
decompressed into one spool file in the build's own directory while it
arrives, and its members are then indexed into a `ContextTree` (names,
types, owners, modes and where each file's data is).  Nothing of the
archive is unpacked: a member named `../x` or a symlink out of the
context is refused here, and file data is read from the spool only when a
COPY needs it.  A body that is no tar but text is taken as the Dockerfile
alone, with an empty context.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import lzma
import os
import tarfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.build import context as ctx
from dockyard.errors import InvalidParameter

SPOOL_BATCH = 1 << 20
READ_CHUNK = 1 << 20


class Reader(Protocol):
    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _Plain:
    def decompress(self, data: bytes) -> bytes:
        return data


class _Gzip:
    """gzip, members after members (as Go's gzip reader reads them)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if not self._d.eof:
                break
            data = self._d.unused_data
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return b"".join(out)

    def flush(self) -> bytes:
        return self._d.flush()


def _decompressor(head: bytes) -> _Decompressor:
    if head.startswith(b"\x1f\x8b"):
        return _Gzip()
    if head.startswith(b"BZh"):
        return bz2.BZ2Decompressor()
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor()
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidParameter("the build context is compressed with zstd, which this daemon "
                               "cannot read: send it plain or compressed with gzip, bzip2 "
                               "or xz")
    return _Plain()


async def spool_body(chunks: AsyncIterator[bytes], dest: Path) -> int:
    """Decompress the body into `dest` as it arrives; the size written."""
    dec: _Decompressor | None = None
    head = b""
    pending: list[bytes] = []
    pending_size = 0
    total = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        async for chunk in chunks:
            if dec is None:
                head += chunk
                if len(head) < 6:
                    continue
                dec = _decompressor(head)
                chunk, head = head, b""
            try:
                data = dec.decompress(chunk)
            except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
                raise InvalidParameter(f"Error processing tar file(exit status 1): {e}") from None
            if data:
                pending.append(data)
                pending_size += len(data)
            if pending_size >= SPOOL_BATCH:
                await asyncio.to_thread(_write_all, fd, pending)
                total += pending_size
                pending, pending_size = [], 0
        if dec is None and head:
            dec = _decompressor(head)
            pending.append(dec.decompress(head))
            pending_size += len(pending[-1])
        if isinstance(dec, _Gzip):
            tail = dec.flush()
            pending.append(tail)
            pending_size += len(tail)
        await asyncio.to_thread(_write_all, fd, pending)
        total += pending_size
        if total:
            # the CLI's rewritten contexts (a Dockerfile from outside, .dockerignore
            # amended) end without padding or end-of-archive blocks, which Go's
            # reader accepts and Python's does not
            await asyncio.to_thread(_write_all, fd, [bytes((-total) % 512 + 1024)])
    finally:
        os.close(fd)
    return total


def _write_all(fd: int, parts: list[bytes]) -> None:
    for p in parts:
        view = memoryview(p)
        while view:
            n = os.write(fd, view)
            view = view[n:]


@dataclass
class Context:
    """A received context: its tree, the spool holding the data, and the
    Dockerfile's text when the body was a Dockerfile alone."""

    tree: ctx.ContextTree
    spool: Path
    dockerfile_only: bytes | None = None

    def open_data(self, entry: ctx.Entry) -> Reader:
        """A reader of one file's data (spooled, or on the host for an image's tree)."""
        if entry.ref:
            fd = os.open(entry.ref, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return os.fdopen(fd, "rb")
        return _Slice(self.spool, entry.offset, entry.size)

    def read(self, entry: ctx.Entry, limit: int | None = None) -> bytes:
        f = self.open_data(entry)
        try:
            return f.read(limit if limit is not None else -1)
        finally:
            f.close()

    def digest(self, entry: ctx.Entry) -> str:
        """sha256 of a file's data, computed once."""
        if not entry.digest:
            h = hashlib.sha256()
            f = self.open_data(entry)
            try:
                while chunk := f.read(READ_CHUNK):
                    h.update(chunk)
            finally:
                f.close()
            entry.digest = h.hexdigest()
        return entry.digest


class _Slice:
    """Part of the spool file, read like a file."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(offset)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


def _looks_like_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > 8180          # a character cut at the sample's end
    return True


def index_spool(spool: Path, size: int) -> Context:
    """The context tree of a spooled tar of `size` bytes (in a thread: it
    reads the file)."""
    tree = ctx.ContextTree()
    if size == 0:
        return Context(tree, spool)
    with open(spool, "rb") as f:
        head = f.read(min(size, 8192))
    try:
        tf = tarfile.open(spool, "r:", errorlevel=1)  # noqa: SIM115 - closed below
    except tarfile.TarError:
        if _looks_like_text(head):
            with open(spool, "rb") as f:
                return Context(tree, spool, dockerfile_only=f.read(size))
        raise InvalidParameter("Error processing tar file(exit status 1): archive/tar: "
                               "invalid tar header") from None
    files: dict[str, ctx.Entry] = {}
    with tf:
        try:
            for ti in tf:
                _add_member(tree, files, ti)
        except (tarfile.TarError, EOFError) as e:
            raise InvalidParameter(f"Error processing tar file(exit status 1): {e}") from None
    return Context(tree, spool)


def _add_member(tree: ctx.ContextTree, files: dict[str, ctx.Entry], ti: tarfile.TarInfo
                ) -> None:
    path = ctx.clean_member_name(ti.name)

    def entry(kind: str, **kw: object) -> ctx.Entry:
        e = ctx.Entry(path, kind, mode=ti.mode & 0o7777, uid=ti.uid, gid=ti.gid,
                      mtime=int(ti.mtime))
        for k, v in kw.items():
            setattr(e, k, v)
        return e

    if ti.isdir():
        tree.add(entry(ctx.DIR))
    elif ti.isreg():
        files[path] = entry(ctx.FILE, size=ti.size, offset=ti.offset_data)
        tree.add(files[path])
    elif ti.issym():
        tree.add(entry(ctx.SYMLINK, linkname=ti.linkname))
    elif ti.islnk():
        target = files.get(ctx.clean_member_name(ti.linkname))
        if target is None:
            raise InvalidParameter(f"Error processing tar file(exit status 1): invalid hardlink "
                                   f"{ti.name!r} -> {ti.linkname!r}")
        files[path] = entry(ctx.FILE, mode=target.mode, uid=target.uid, gid=target.gid,
                            size=target.size, mtime=target.mtime, offset=target.offset)
        tree.add(files[path])
    elif ti.isfifo():
        if path:
            tree.add(entry(ctx.FIFO))
    elif ti.ischr() or ti.isblk():
        raise InvalidParameter(f"the build context holds a device file ({ti.name}): devices "
                               "cannot be copied into an image")
