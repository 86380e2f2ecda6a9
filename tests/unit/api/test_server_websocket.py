"""The websocket endpoint with raw frames: handshake, echo, pings, fragments,
and the protocol errors that end a websocket (unmasked client frames,
oversized or fragmented control frames, messages beyond the cap)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import pytest
from http_testutil import Server, body_of, read_until, status_of

# nothing a client sends may leave a traceback or an error in the log
pytestmark = pytest.mark.usefixtures("no_tracebacks")


def frame(payload: bytes, opcode: int = 2, fin: bool = True, masked: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class FrameReader:
    def __init__(self, s: socket.socket, buf: bytes = b"") -> None:
        self.s = s
        self.buf = buf

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            data = self.s.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def next(self) -> tuple[int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames are never masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload


def upgrade(server: Server, extra: bytes = b"") -> tuple[socket.socket, FrameReader]:
    s = server.connect()
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra)
    head = read_until(s, b"\r\n\r\n")
    head, rest = head.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: " in head
    return s, FrameReader(s, rest)


def closed_with(fr: FrameReader, code: int) -> None:
    op, payload = fr.next()
    assert op == 8, (op, payload)
    assert struct.unpack("!H", payload[:2])[0] == code
    with pytest.raises((EOFError, ConnectionResetError)):
        fr.next()


def test_echo_ping_and_fragments(server: Server):
    # a first frame sent together with the upgrade request is not lost
    s, fr = upgrade(server, extra=frame(b"early"))
    with s:
        assert fr.next() == (2, b"echo:early")
        s.sendall(frame(b"hello", opcode=1))
        assert fr.next() == (2, b"echo:hello")
        s.sendall(frame(b"are you there", opcode=9))
        assert fr.next() == (10, b"are you there")
        # a message in three fragments with a ping in between
        s.sendall(frame(b"one ", fin=False) + frame(b"two ", opcode=0, fin=False)
                  + frame(b"", opcode=9) + frame(b"three", opcode=0))
        assert fr.next() == (10, b"")
        assert fr.next() == (2, b"echo:one two three")
        s.sendall(frame(struct.pack("!H", 1000), opcode=8))
        closed_with(fr, 1000)


def test_unmasked_client_frame_is_refused(server: Server):
    s, fr = upgrade(server)
    with s:
        s.sendall(frame(b"hello", masked=False))
        closed_with(fr, 1002)
    assert status_of(server.ping()) == 200


@pytest.mark.parametrize("bad", [
    frame(b"x" * 126, opcode=9),                  # control frame payload over 125
    frame(b"ping", opcode=9, fin=False),          # fragmented control frame
    frame(b"cont", opcode=0),                     # continuation with nothing to continue
    frame(b"x", opcode=3),                        # reserved opcode
    bytes([0xC2]) + frame(b"x")[1:],              # RSV1 without an extension
    frame(b"a", fin=False) + frame(b"b"),         # new message inside a fragmented one
    frame(b"\x03\xe8" + b"\xff", opcode=8),       # close reason not UTF-8
])
def test_control_frame_and_protocol_rules(server: Server, bad: bytes):
    s, fr = upgrade(server)
    with s:
        s.sendall(bad)
        op, payload = fr.next()
        assert op == 8
        assert struct.unpack("!H", payload[:2])[0] in (1002, 1007)


def test_invalid_utf8_text_is_refused(server: Server):
    s, fr = upgrade(server)
    with s:
        s.sendall(frame(b"\xff\xfe", opcode=1))
        closed_with(fr, 1007)


def test_message_size_cap(server: Server):
    server.limits.websocket_max_message = 1024
    s, fr = upgrade(server)
    with s:
        s.sendall(frame(b"x" * 1024))
        assert fr.next() == (2, b"echo:" + b"x" * 1024)
        s.sendall(frame(b"x" * 2000))
        closed_with(fr, 1009)
    # also when the excess comes in fragments, and from a frame that
    # announces a huge length but never sends it
    s, fr = upgrade(server)
    with s:
        s.sendall(frame(b"x" * 600, fin=False) + frame(b"x" * 600, opcode=0, fin=False))
        closed_with(fr, 1009)
    s, fr = upgrade(server)
    with s:
        s.sendall(frame(b"x" * 70000)[:4000])
        closed_with(fr, 1009)


def test_client_going_away_ends_the_handler(server: Server):
    s, fr = upgrade(server)
    s.sendall(frame(b"x"))
    assert fr.next() == (2, b"echo:x")
    s.close()
    import time

    deadline = time.monotonic() + 5
    while server.connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections() == 0


@pytest.mark.parametrize("headers", [
    b"",                                                            # no upgrade at all
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",  # no key
    (b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     b"Sec-WebSocket-Version: 13\r\n"),                              # no Connection: Upgrade
    (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"),
])
def test_bad_upgrade_is_a_400(server: Server, headers: bytes):
    got = server.exchange(b"GET /ws HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_of(got) == 400
    assert json.loads(body_of(got))["message"].startswith("bad websocket upgrade request")
    assert status_of(server.ping()) == 200
