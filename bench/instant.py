"""An engine that answers from memory: the docker CLI's own share of a command.

`make bench` times whole `docker` commands against dockyard and dockerd.
Part of each is the CLI itself: starting, negotiating the API version,
decoding and printing.  This server answers the few requests `docker ps -a`
and `docker exec c true` make with bytes recorded from a real engine, each
in microseconds, so the time the CLI takes against it is what that command
costs with a daemon that takes no time at all.  A ratio target below
`floor / dockerd` cannot be met by any daemon.

Only for the benchmark: it knows these requests and answers nothing else.
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Self

_VERSIONED = re.compile(r"^/v[0-9.]+")
_HEADERS = ("Api-Version: {api}\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
            "Server: instant\r\n")


def response(status: str, body: bytes = b"", api: str = "1.51",
             content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + _HEADERS.format(api=api)
    head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass
class Answers:
    """Bodies recorded from a real engine."""

    containers_list: bytes
    container_inspect: bytes
    exec_inspect: bytes
    exec_id: str = "e" * 64
    api: str = "1.51"
    routes: list[tuple[str, re.Pattern[str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        def ok(body: bytes) -> bytes:
            return response("200 OK", body, self.api)

        self.routes = [
            ("HEAD", re.compile(r"^/_ping$"), response("200 OK", b"", self.api, "text/plain")),
            ("GET", re.compile(r"^/_ping$"), response("200 OK", b"OK", self.api, "text/plain")),
            ("GET", re.compile(r"^/containers/json"), ok(self.containers_list)),
            ("GET", re.compile(r"^/containers/[^/]+/json"), ok(self.container_inspect)),
            ("POST", re.compile(r"^/containers/[^/]+/exec$"),
             response("201 Created", json.dumps({"Id": self.exec_id}).encode(), self.api)),
            ("GET", re.compile(r"^/exec/[^/]+/json"), ok(self.exec_inspect)),
        ]

    def answer(self, method: str, path: str) -> bytes | None:
        path = _VERSIONED.sub("", path)
        for m, pattern, data in self.routes:
            if m == method and pattern.match(path):
                return data
        return None


_UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream"
             b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


class _Handler(socketserver.BaseRequestHandler):
    server: InstantServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            if method == "POST" and re.search(r"/exec/[^/]+/start$", path):
                # the process printed nothing and is gone: the stream ends at once
                sock.sendall(_UPGRADED)
                return
            data = self.server.answers.answer(method, path)
            if data is None:
                body = json.dumps({"message": f"not recorded: {method} {path}"}).encode()
                data = response("404 Not Found", body, self.server.answers.api)
            sock.sendall(data)


class InstantServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, answers: Answers) -> None:
        if os.path.exists(path):
            os.unlink(path)
        self.answers = answers
        super().__init__(path, _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        os.unlink(self.server_address)  # type: ignore[arg-type]
