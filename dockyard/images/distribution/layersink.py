"""A layer blob as it arrives: hashed, decompressed and written as the
uncompressed tar the store keeps, in one pass (synchronous; a pull feeds it
from a worker thread, a megabyte at a time).

The compression is found from the first bytes, as dockerd's
DecompressStream finds it (gzip, zstd, bzip2, xz, or none), whatever the
media type says.  Concatenated gzip members and zstd frames are read
through.  `finish` says whether the blob is whole (a truncated gzip or zstd
stream is an error even when the registry's byte count was right).
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import zlib
from pathlib import Path
from typing import Any

import zstandard

from dockyard.errors import InvalidParameter

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class LayerDataError(InvalidParameter):
    """The blob's bytes are not what they claim to be."""


def _new_decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor()
    return None


class LayerSink:
    """Feed it a blob's bytes in order; it keeps their digest, the digest of
    what they decompress to (the diff_id) and writes the latter to `path`."""

    def __init__(self, path: Path, digest_algorithm: str = "sha256") -> None:
        self.path = path
        self._algo = digest_algorithm
        self._f = open(path, "wb")  # noqa: SIM115 - closed in finish/abort
        self.reset()

    def reset(self) -> None:
        """Start over (the registry ignored a Range request)."""
        self._f.seek(0)
        self._f.truncate()
        self.compressed = hashlib.new(self._algo)
        self.uncompressed = hashlib.sha256()
        self.received = 0
        self.size = 0
        self._head = b""
        self._kind = ""
        self._dec: Any = None

    def _emit(self, data: bytes) -> None:
        if data:
            self.uncompressed.update(data)
            self._f.write(data)
            self.size += len(data)

    def _decompress(self, data: bytes) -> None:
        while data:
            if self._dec is None:          # a gzip stream's next member
                self._dec = _new_decompressor(self._kind)
            try:
                out = self._dec.decompress(data)
            except (zlib.error, lzma.LZMAError, OSError, EOFError,
                    zstandard.ZstdError) as e:
                raise LayerDataError(f"could not decompress layer: {e}") from None
            self._emit(out)
            if self._dec.eof:
                # the end of a gzip member, zstd frame or bzip2 stream: the
                # next one may follow; Go's gzip reader reads them all too
                data = self._dec.unused_data
                self._dec = None
                continue
            break

    def write(self, data: bytes) -> None:
        self.compressed.update(data)
        self.received += len(data)
        if not self._kind:
            self._head += data
            if len(self._head) < 6 and data:
                return
            head, self._head = self._head, b""
            if head.startswith(GZIP_MAGIC):
                self._kind = "gzip"
            elif head.startswith(ZSTD_MAGIC):
                self._kind = "zstd"
            elif head.startswith(BZIP2_MAGIC):
                self._kind = "bzip2"
            elif head.startswith(XZ_MAGIC):
                self._kind = "xz"
            else:
                self._kind = "none"
            data = head
        if self._kind == "none":
            self._emit(data)
        else:
            self._decompress(data)

    @property
    def digest(self) -> str:
        return f"{self._algo}:{self.compressed.hexdigest()}"

    def finish(self) -> tuple[str, int]:
        """All bytes are in: (diff_id, uncompressed size); the file is synced."""
        if not self._kind:
            self._kind = "none"
            self._emit(self._head)
            self._head = b""
        if self._kind != "none" and (self._dec is not None or self.size == 0):
            # stopped inside a member or frame (or never finished the first)
            raise LayerDataError("could not decompress layer: unexpected EOF")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return "sha256:" + self.uncompressed.hexdigest(), self.size

    def abort(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)
