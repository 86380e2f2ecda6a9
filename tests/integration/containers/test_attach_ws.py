"""Issue 3: GET /containers/{id}/attach/ws (raw streams over a websocket)."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return struct.pack("!BB", 0x82, 0x80 | len(payload)) + mask + masked


def _read_frames(s: socket.socket, want: bytes, timeout: float = 10) -> bytes:
    s.settimeout(timeout)
    buf = b""
    got = b""
    deadline = time.time() + timeout
    while want not in got and time.time() < deadline:
        buf += s.recv(65536)
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                n = struct.unpack("!H", buf[2:4])[0]
                off = 4
            if len(buf) < off + n:
                break
            got += buf[off:off + n]
            buf = buf[off + n:]
    return got


def test_attach_ws_stdin_and_output(daemon, name):
    cid = daemon.out("run", "-d", "-i", "--name", name, "busybox", "cat").strip()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.socket)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /v1.45/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1 "
                   "HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"Sec-WebSocket-Accept" in head
        s.sendall(_frame(b"over websocket\n"))
        assert b"over websocket\n" in _read_frames(s, b"over websocket\n")
        s.close()
    finally:
        daemon.docker("rm", "-f", name)
