"""Helpers for the build tests: contexts as tar bytes, raw /build requests."""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
import urllib.parse
from typing import Any


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 120) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def tar_of(files: dict[str, bytes | str], extra: list[tarfile.TarInfo] | None = None,
           mode: str = "w") -> bytes:
    """A context tar; `extra` members are added as they are (links, hostile names)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            ti = tarfile.TarInfo(name)
            ti.size = len(raw)
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(raw))
        for ti in extra or []:
            tf.addfile(ti)
    return buf.getvalue()


def post_build(sock: str, body: bytes, **query: Any) -> tuple[int, list[dict[str, Any]], str]:
    """POST /build; (status, JSON records, raw text)."""
    pairs: list[tuple[str, str]] = []
    for k, v in query.items():
        for item in (v if isinstance(v, list) else [v]):
            pairs.append((k, item if isinstance(item, str) else json.dumps(item)))
    c = UnixHTTP(sock)
    c.request("POST", "/v1.44/build?" + urllib.parse.urlencode(pairs), body=body,
              headers={"Content-Type": "application/x-tar"})
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    records = []
    if r.status == 200:
        for line in text.splitlines():
            if line.strip():
                records.append(json.loads(line))
    return r.status, records, text


def stream_text(records: list[dict[str, Any]]) -> str:
    return "".join(r.get("stream", "") for r in records)
