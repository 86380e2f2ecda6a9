"""Small durable-filesystem helpers for the image store.

Every change the store makes becomes visible through one rename(2) of a
fully written and fsynced temp file or directory, so a crash leaves either
the old state or the new one, never a half-written record.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from dockyard.util.cancel import CancelToken, check

CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-" + path.name + "-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(Path(tmp))
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default



def copy_hashing(src: IO[bytes], dst: IO[bytes], cancel: CancelToken | None = None
                 ) -> tuple[str, int]:
    """Copy a stream, returning its sha256 digest and length."""
    h = hashlib.sha256()
    n = 0
    while chunk := src.read(CHUNK):
        check(cancel)
        h.update(chunk)
        dst.write(chunk)
        n += len(chunk)
    return "sha256:" + h.hexdigest(), n


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
