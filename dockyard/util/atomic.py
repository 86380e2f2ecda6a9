"""Crash-safe file writes: temp file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, data: bytes, mode: int = 0o644, *,
                 make_parents: bool = True, sync_dir: bool = True) -> None:
    """`make_parents=False` for a file whose directory must already exist
    (a record must never bring back a directory that was removed).

    `sync_dir=False` skips the fsync of the directory: after a crash the
    file is whole, either the old or the new one (what dockerd's own
    atomic writes promise for its container records)."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not sync_dir:
        return
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_json(path: str | Path, obj: Any, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), mode)
