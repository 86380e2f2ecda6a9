"""Helpers for the robustness tests: deep and large inputs, raw requests a
client abandons, waiting for a daemon to reach a point of its work, and
snapshots of what is on disk."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import signal
import socket
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEEP_NAME = "dddddddddd"          # 10 characters: 2,000 levels is ~22k of path


def deep_tar(depth: int, leaf: bytes, name: str = DEEP_NAME) -> bytes:
    """A layer tar holding a chain `depth` directories deep and a file at its bottom."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        path = ""
        for _ in range(depth):
            path += name + "/"
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        ti = tarfile.TarInfo(path + "leaf")
        ti.size = len(leaf)
        tf.addfile(ti, io.BytesIO(leaf))
    return buf.getvalue()


def many_files_tar(count: int, size: int = 64, depth: int = 0) -> bytes:
    """A layer tar of `count` small files (slow to unpack, quick to make),
    after a chain `depth` directories deep when asked."""
    buf = io.BytesIO()
    data = os.urandom(size)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        path = ""
        for _ in range(depth):
            path += DEEP_NAME + "/"
            ti = tarfile.TarInfo(path)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        for i in range(count):
            ti = tarfile.TarInfo(f"d{i % 100}/f{i}")
            ti.size = size
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def load_archive(layer: bytes, tag: str) -> bytes:
    """A docker-archive (legacy layout) of one image with this layer."""
    import json

    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    files = {"c.json": cfg, "l/layer.tar": layer,
             "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": [tag],
                                           "Layers": ["l/layer.tar"]}]).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for n, d in files.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            tf.addfile(ti, io.BytesIO(d))
    return buf.getvalue()


def leaf_in_tar(data: bytes, suffix: str = "/leaf") -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            if m.name.endswith(suffix) and m.isreg():
                f = tf.extractfile(m)
                assert f is not None
                return f.read()
    raise AssertionError(f"no {suffix} in the archive")


class UnixHTTP(http.client.HTTPConnection):
    """http.client over the daemon's unix socket."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def send_request(sock_path: str, method: str, target: str, body: bytes = b"",
                 content_type: str = "application/x-tar") -> socket.socket:
    """Send a whole request and return the open socket (the answer unread)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    head = (f"{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body)
    return s


def read_response(s: socket.socket, timeout: float = 120) -> tuple[int, bytes]:
    """(status, body) of the next response on the connection."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in
              (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if b"content-length" in fields:
        n = int(fields[b"content-length"])
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body[:n]
    while not body.endswith(b"\r\n0\r\n\r\n") and not body.startswith(b"0\r\n\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line, 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    return status, out


def wait_for(cond: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what or cond}")


def staging(data_root: Path, prefix: str) -> bool:
    """Whether the image store's staging holds an entry named prefix-*."""
    try:
        return any(p.name.startswith(prefix + "-") for p in (data_root / "images/tmp").iterdir())
    except FileNotFoundError:
        return False


def unpacking_past(data_root: Path, rel: str) -> bool:
    """Whether a layer being unpacked in the store's staging already holds `rel`
    (what comes after the part of the tar that matters)."""
    try:
        return any((p / "diff" / rel).exists() for p in (data_root / "images/tmp").iterdir()
                   if p.name.startswith("layer-"))
    except FileNotFoundError:
        return False


def store_state(data_root: Path) -> dict[str, list[str]]:
    """What the image store holds on disk (names only)."""
    root = data_root / "images"
    return {d: sorted(os.listdir(root / d)) for d in ("layers", "imagedb", "blobs/sha256", "tmp")}


def kill9(d: Any) -> None:
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait()
