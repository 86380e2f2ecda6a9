"""A proxy in front of a test registry, for the faults a well-behaved
registry never makes: a connection that drops in the middle of a blob,
a blob served with other bytes than its digest's or cut short, a manifest
that is no JSON, blob downloads redirected to another host (a CDN, here a
server on 127.0.0.2 that records what it was sent), slow blobs (to see how
many downloads run at once).

Everything runs on the loopback interface, in threads of the test process;
`stop()` ends them.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.images.registries import Registry

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
              "trailer", "upgrade"}
BLOB_PATH = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
MANIFEST_PATH = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Faults:
    """What to do to which requests (changed by the tests between pulls)."""

    drop_blob_once: dict[str, int] = field(default_factory=dict)   # digest -> bytes sent
    corrupt_blobs: set[str] = field(default_factory=set)           # one byte flipped
    short_blobs: set[str] = field(default_factory=set)             # the last 100 bytes cut
    garbage_manifests: set[str] = field(default_factory=set)       # tags answered with HTML
    redirect_blobs: bool = False                                   # to the CDN on 127.0.0.2
    blob_delay: float = 0.0                                        # seconds before a blob


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _upstream(reg: Registry, method: str, path: str, headers: dict[str, str],
              body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", reg.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


class FaultProxy:
    def __init__(self, upstream: Registry) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.seen: list[Seen] = []
        self.cdn_seen: list[Seen] = []
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler(cdn=False))
        self.cdn = _Server(("127.0.0.2", 0), self._handler(cdn=True))
        self.port = self.server.server_address[1]
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True)
                         for s in (self.server, self.cdn)]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.2:{self.cdn.server_address[1]}"

    def start(self) -> FaultProxy:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for s in (self.server, self.cdn):
            s.shutdown()
            s.server_close()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.seen.clear()
            self.cdn_seen.clear()
            self.max_inflight = 0

    def blob_gets(self, digest: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and BLOB_PATH.match(s.path)
                and (digest is None or s.path.endswith(digest))]

    def _enter(self) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)

    def _leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def _handler(self, cdn: bool) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes | None:
                n = self.headers.get("Content-Length")
                return self.rfile.read(int(n)) if n else None

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes,
                      length: int | None = None) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _drop(self, status: int, headers: list[tuple[str, str]], body: bytes,
                      sent: int) -> None:
                """Promise the whole body, send part of it, hang up."""
                self._send(status, headers, body[:sent], length=len(body))
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                seen = Seen(self.command, self.path, dict(self.headers.items()))
                (proxy.cdn_seen if cdn else proxy.seen).append(seen)
                path = self.path.split("?", 1)[0]
                f = proxy.faults
                if cdn:
                    # /v2/... as the registry names it; the CDN fetches without credentials
                    # of the client's (the upstream of these tests takes basic auth)
                    headers.pop("Authorization", None)
                    if proxy.upstream.htpasswd:
                        import base64
                        user, pw = proxy.upstream.htpasswd
                        headers["Authorization"] = "Basic " + base64.b64encode(
                            f"{user}:{pw}".encode()).decode()
                    status, rh, data = _upstream(proxy.upstream, self.command, self.path,
                                                 headers, body)
                    self._send(status, rh, data)
                    return
                m = MANIFEST_PATH.match(path)
                if m and self.command == "GET" and m.group("ref") in f.garbage_manifests:
                    self._send(200, [("Content-Type", "text/html")],
                               b"<html><body>not a registry</body></html>")
                    return
                b = BLOB_PATH.match(path)
                if b and self.command == "GET" and f.redirect_blobs:
                    self._send(307, [("Location", proxy.cdn_url + self.path)], b"")
                    return
                if b and self.command == "GET":
                    proxy._enter()
                    try:
                        if f.blob_delay:
                            time.sleep(f.blob_delay)
                        status, rh, data = _upstream(proxy.upstream, self.command, self.path,
                                                     headers, body)
                    finally:
                        proxy._leave()
                    digest = b.group("digest")
                    if status in (200, 206) and digest in f.drop_blob_once \
                            and "Range" not in self.headers:
                        self._drop(status, rh, data, f.drop_blob_once.pop(digest))
                        return
                    if status == 200 and digest in f.corrupt_blobs and data:
                        data = bytes([data[0] ^ 0xFF]) + data[1:]
                    if status == 200 and digest in f.short_blobs:
                        data = data[:-100]
                    self._send(status, rh, data)
                    return
                status, rh, data = _upstream(proxy.upstream, self.command, self.path, headers,
                                             body)
                self._send(status, rh, data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler
