"""Which compressed blobs a layer is known as, and where (dockerd's
v2metadata service).

A pull records, for each layer's diff_id, the digest, media type and size
of the blob it came from and the repository (`127.0.0.1:5000/t/bb`) that
served it; a push records what it uploaded.  A later push to the same
registry then asks whether the target repository already has that blob
(HEAD) or mounts it from the repository it came from, instead of
compressing and uploading the layer again.  Kept in one JSON file under the
image store, written atomically; at most a few entries per layer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from dockyard.images import fsutil

log = logging.getLogger(__name__)

MAX_PER_LAYER = 8


@dataclass(frozen=True)
class BlobSource:
    digest: str
    media_type: str
    size: int
    repository: str          # fully qualified: host/path


class LayerMetadata:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, list[BlobSource]] = {}
        try:
            raw = fsutil.read_json(path, {}) or {}
            for diff_id, items in raw.items():
                self._data[diff_id] = [BlobSource(**i) for i in items]
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("ignoring unreadable %s: %s", path, e)
            self._data = {}

    def sources(self, diff_id: str) -> list[BlobSource]:
        with self._lock:
            return list(self._data.get(diff_id, []))

    def add(self, entries: list[tuple[str, BlobSource]]) -> None:
        """Remember (diff_id, source) pairs, newest first; written at once."""
        if not entries:
            return
        with self._lock:
            for diff_id, src in entries:
                items = [s for s in self._data.get(diff_id, [])
                         if (s.digest, s.repository) != (src.digest, src.repository)]
                self._data[diff_id] = [src, *items][:MAX_PER_LAYER]
            snapshot = {k: [asdict(s) for s in v] for k, v in self._data.items()}
        fsutil.atomic_write_json(self.path, snapshot)

    def forget_missing(self, present: set[str]) -> None:
        """Drop layers the store no longer has."""
        with self._lock:
            gone = [k for k in self._data if k not in present]
            if not gone:
                return
            for k in gone:
                del self._data[k]
            snapshot = {k: [asdict(s) for s in v] for k, v in self._data.items()}
        fsutil.atomic_write_json(self.path, snapshot)
