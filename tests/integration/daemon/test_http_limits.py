"""The daemon's HTTP server under many idle clients and hostile requests:
it keeps answering, stays small, and keeps its log free of tracebacks."""

from __future__ import annotations

import os
import socket
import time


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _ping(path: str, timeout: float = 1.0) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while data := s.recv(65536):
            out += data
        return out


def test_500_idle_clients_do_not_block_the_socket(daemon):
    pid = daemon.proc.pid
    clients: list[socket.socket] = []
    rss_before = _rss_kib(pid)
    try:
        for i in range(500):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(daemon.socket)
            if i % 2:
                # idle after one request on a kept-alive connection
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                got = b""
                while b"OK" not in got:
                    got += s.recv(65536)
            clients.append(s)
        t0 = time.monotonic()
        assert _ping(daemon.socket).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - t0 < 1
        t0 = time.monotonic()
        res = daemon.docker("version", "--format", "{{.Server.Version}}", timeout=10)
        assert res.returncode == 0, res.stderr
        assert time.monotonic() - t0 < 1.5
        # 500 idle connections cost the daemon little memory (the session
        # daemon's own size depends on what ran before; bench/ measures it)
        grown = _rss_kib(pid) - rss_before
        assert grown < 16 * 1024, f"{grown} KiB more for 500 idle clients"
    finally:
        for s in clients:
            s.close()


def test_hostile_requests_leave_no_traceback(daemon):
    bad = [
        (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"),
        b"GET /_ping HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"00000000000000002\r\n{}\r\n0\r\n\r\n"),
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    ]
    before = daemon.log()
    for raw in bad:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(daemon.socket)
            s.sendall(raw)
            out = b""
            try:
                while data := s.recv(65536):
                    out += data
            except ConnectionResetError:
                pass
        assert out.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), out[:200]
        assert out.count(b"HTTP/1.1") == 1
    # the container id as the router sees it: decoded once
    res = daemon.docker("inspect", "abc%2Fdef")
    assert b"abc%2Fdef" in res.stderr
    new = daemon.log()[len(before):]
    assert "Traceback" not in new
    assert os.path.exists(daemon.socket)
    assert _ping(daemon.socket).startswith(b"HTTP/1.1 200")
