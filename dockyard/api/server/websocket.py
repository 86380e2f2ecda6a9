"""Websockets (Docker's `attach/ws`) on wsproto: the handshake and a small
message interface for handlers.

wsproto does the protocol: masking, fragmentation, control-frame rules,
close codes.  Here we add what it leaves to the application: answering
pings, a cap on message size, and closing the connection when the client
breaks the protocol.
"""

from __future__ import annotations

import codecs
import contextlib

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from dockyard.api.server.hijack import HijackedStream

DEFAULT_MAX_MESSAGE = 1024 * 1024


class HandshakeError(Exception):
    pass


def accept_handshake(headers: list[tuple[bytes, bytes]], target: str) -> tuple[WSConnection,
                                                                               bytes]:
    """Check an already parsed upgrade request; the protocol object and the
    101 answer to write.  HandshakeError when it is not a websocket upgrade."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.initiate_upgrade_connection(headers, target)
        if not any(isinstance(ev, Request) for ev in ws.events()):
            raise HandshakeError("not a websocket upgrade request")
        return ws, ws.send(AcceptConnection())
    except (RemoteProtocolError, LocalProtocolError, h11.ProtocolError) as e:
        raise HandshakeError(str(e)) from None


class WebSocket:
    """One accepted websocket: whole messages in, messages out."""

    def __init__(self, stream: HijackedStream, proto: WSConnection,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._stream = stream
        self._proto = proto
        self._max_message = max_message
        self._ended = False
        # text frames must carry whole UTF-8 characters: hold back split ones
        self._text = codecs.getincrementaldecoder("utf-8")("replace")

    async def receive(self) -> bytes | None:
        """The payload of the next text or binary message; None once the
        client closed the websocket, broke the protocol or went away."""
        parts: list[bytes] = []
        size = 0
        while not self._ended:
            for ev in self._proto.events():
                if isinstance(ev, Ping):
                    await self._send_quietly(self._proto.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    await self._closed_by_client(ev)
                    return None
                elif isinstance(ev, Message):
                    data = ev.data.encode() if isinstance(ev.data, str) else bytes(ev.data)
                    size += len(data)
                    if size > self._max_message:
                        await self._fail(CloseReason.MESSAGE_TOO_BIG, "message too big")
                        return None
                    parts.append(data)
                    if ev.message_finished:
                        return b"".join(parts)
            if self._ended:
                break
            data = await self._stream.read(65536)
            if not data:
                self._ended = True
                break
            self._proto.receive_data(data)
        return None

    async def send(self, data: bytes, binary: bool = True) -> None:
        """Send one message; ConnectionError once the websocket is closed."""
        if self._proto.state is not ConnectionState.OPEN:
            raise ConnectionResetError("the websocket is closed")
        if binary:
            out = self._proto.send(BytesMessage(data=data))
        else:
            text = self._text.decode(data)
            if not text:
                return
            out = self._proto.send(TextMessage(data=text))
        self._stream.write(out)
        await self._stream.drain()

    async def close(self, code: int = CloseReason.NORMAL_CLOSURE) -> None:
        """Say goodbye (if the protocol still allows) and drop the connection."""
        if self._proto.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            await self._send_quietly(self._proto.send(CloseConnection(code=code)))
        self._ended = True
        self._stream.close()

    async def _closed_by_client(self, ev: CloseConnection) -> None:
        self._ended = True
        if self._proto.state is ConnectionState.REMOTE_CLOSING:
            # an orderly close: answer it, then the TCP connection goes too (RFC 6455 7.1.1)
            await self._send_quietly(self._proto.send(ev.response()))
            self._stream.close()
        elif self._proto.state is ConnectionState.OPEN:
            # wsproto reports a broken frame as a close with the reason's code
            await self._fail(ev.code, ev.reason or "")

    async def _fail(self, code: int, reason: str) -> None:
        self._ended = True
        if self._proto.state is ConnectionState.OPEN:
            await self._send_quietly(self._proto.send(CloseConnection(code=code, reason=reason)))
        self._stream.close()

    async def _send_quietly(self, data: bytes) -> None:
        self._stream.write(data)
        with contextlib.suppress(ConnectionError):
            await self._stream.drain()
