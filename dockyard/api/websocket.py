"""Just enough RFC 6455 for Docker's `attach/ws`: handshake and framing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

from dockyard.errors import InvalidParameter

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def accept_key(client_key: str) -> str:
    return base64.b64encode(hashlib.sha1((client_key + _GUID).encode()).digest()).decode()


def handshake_headers(headers: dict[str, str]) -> list[str]:
    """The 101 response lines for a valid websocket upgrade request."""
    if "websocket" not in headers.get("upgrade", "").lower():
        raise InvalidParameter("websocket upgrade required")
    key = headers.get("sec-websocket-key")
    if not key:
        raise InvalidParameter("missing Sec-WebSocket-Key")
    return ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}"]


def encode_frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """A server frame: final, unmasked."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One client frame (clients must mask), unmasked: (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    opcode = b0 & 0x0F
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b""
    data = await reader.readexactly(n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return opcode, data
