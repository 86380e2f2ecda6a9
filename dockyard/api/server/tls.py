"""TLS termination under the connection loop.

asyncio's own TLS transport closes a connection once the client half-closes
it, but Docker's hijacked streams need the opposite: `docker exec -i` and
`docker attach` send stdin, end it, and then read the container's output to
its end.  Over TLS a client ends its stdin in one of two ways: Go's
`tls.Conn.CloseWrite` (the docker CLI) sends a close_notify alert and keeps
the TCP connection open; a client that shuts down its socket's write side
(docker-py users do, through the raw socket) sends a TCP FIN without one.
Either way the server must go on writing.

So the TLS layer is ours: an `ssl.SSLObject` over two memory BIOs, driven by
a plain asyncio protocol on the TCP socket (`TlsServerProtocol`).  Once the
handshake is done, the HTTP connection's usual stream protocol gets a
`TlsTransport`, which encrypts what it writes and hands it the plaintext;
either kind of half-close reaches it as an EOF, and writing goes on until the
connection is closed from our side.

Refused clients (a certificate the CA did not sign or that has expired, no
certificate where one is required, plain HTTP, a handshake that does not
finish within `Limits.tls_handshake_timeout`) are dropped with one log line
each; plain HTTP gets Go's answer first, which the docker CLI shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger("dockyard.tls")

READ_SIZE = 256 * 1024
# what Go's HTTPS server answers a plain HTTP request with
PLAIN_HTTP_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")
_HTTP_STARTS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                b"CONNECT ", b"TRACE ")
_TLS_HANDSHAKE_RECORD = 0x16


def describe_peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer or "?")


def _ssl_reason(e: BaseException) -> str:
    reason = getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e)
    return str(reason).replace("_", " ").lower() if reason else type(e).__name__


class TlsTransport(asyncio.Transport):
    """The plaintext side of one TLS connection, as the HTTP protocol sees it."""

    def __init__(self, owner: TlsServerProtocol) -> None:
        super().__init__()
        self._owner = owner
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._closing:
            return
        self._owner.send_plain(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS connection ends with close()")

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._owner.close_tls()

    def abort(self) -> None:
        self._closing = True
        self._owner.tcp.abort()

    def is_closing(self) -> bool:
        return self._closing or self._owner.tcp.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sslobj = self._owner.sslobj
        if name == "ssl_object":
            return sslobj
        if name == "peercert":
            return sslobj.getpeercert()
        if name == "cipher":
            return sslobj.cipher()
        if name == "sslcontext":
            # the stream protocol keeps a half-closed connection open only
            # when it believes no TLS is in the way; here the half-close is
            # handled below it, as it must be
            return default
        return self._owner.tcp.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._owner.tcp.pause_reading()

    def resume_reading(self) -> None:
        self._owner.tcp.resume_reading()

    def is_reading(self) -> bool:
        return self._owner.tcp.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._owner.tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._owner.tcp.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._owner.tcp.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._owner.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._owner.app  # type: ignore[return-value]


class HandshakeGate:
    """Bounds the handshakes under way, so that clients that connect and say
    nothing cannot hold more than a few sockets each for long."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0


class TlsServerProtocol(asyncio.Protocol):
    """The TCP side of one TLS connection."""

    def __init__(self, context: ssl.SSLContext, app_factory: Callable[[], asyncio.Protocol],
                 handshake_timeout: float, gate: HandshakeGate) -> None:
        self._context = context
        self._app_factory = app_factory
        self._handshake_timeout = handshake_timeout
        self._gate = gate
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.tcp: asyncio.Transport = None  # type: ignore[assignment]
        self.app: asyncio.Protocol | None = None
        self._transport: TlsTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False       # one of the gate's pending handshakes
        self._peer = "?"
        self._first = True
        self._done = False          # refused or lost: nothing more to do
        self._peer_eof = False      # the client sent close_notify or a FIN

    # ------------------------------------------------------------ TCP side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.tcp = transport
        self._peer = describe_peer(transport.get_extra_info("peername"))
        if self._gate.pending >= self._gate.limit:
            self._refuse(f"{self._gate.pending} TLS handshakes are already under way")
            return
        self._gate.pending += 1
        self._counted = True
        self._timer = asyncio.get_running_loop().call_later(
            self._handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if self._first:
            self._first = False
            if data[0] != _TLS_HANDSHAKE_RECORD:
                if data.startswith(_HTTP_STARTS) or data[:1].isalpha():
                    self.tcp.write(PLAIN_HTTP_ANSWER)
                    self._refuse("plain HTTP on the TLS port")
                else:
                    self._refuse("not a TLS handshake")
                return
        self._incoming.write(data)
        if self.app is None:
            self._handshake()
        else:
            self._read_plain()

    def eof_received(self) -> bool:
        if self._done:
            return False
        if self.app is None:
            self._refuse("closed the connection during the TLS handshake")
            return False
        # a FIN without close_notify: the client sends no more, but reads on.
        # The TLS session is left as it is (an unexpected EOF would put it in
        # an error state and stop our writes too).
        self._read_plain()
        self._deliver_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_handshake()
        self._done = True
        if self.app is not None:
            app, self.app = self.app, None
            app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    # ------------------------------------------------------------ TLS
    def _handshake(self) -> None:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as e:
            self._flush()    # the alert tells the client why
            self._refuse(_ssl_reason(e))
            return
        self._flush()
        self._end_handshake()
        self._transport = TlsTransport(self)
        self.app = self._app_factory()
        self.app.connection_made(self._transport)
        if self._incoming.pending:
            self._read_plain()

    def _read_plain(self) -> None:
        chunks: list[bytes] = []
        closed = False
        while not self._peer_eof:
            try:
                data = self.sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as e:
                self._flush()
                log.warning("tls: dropped %s: %s", self._peer, _ssl_reason(e))
                self._deliver(chunks)
                self._done = True
                self.tcp.abort()
                return
            if not data:
                closed = True     # close_notify: the client's half-close
                break
            chunks.append(data)
        self._flush()     # TLS 1.3 post-handshake answers (key updates)
        self._deliver(chunks)
        if closed:
            self._deliver_eof()

    def _deliver(self, chunks: list[bytes]) -> None:
        if chunks and self.app is not None:
            self.app.data_received(b"".join(chunks) if len(chunks) > 1 else chunks[0])

    def _deliver_eof(self) -> None:
        if self._peer_eof:
            return
        self._peer_eof = True
        if self.app is not None:
            self.app.eof_received()   # its answer does not matter: we keep writing

    def send_plain(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                n = self.sslobj.write(view)
                view = view[n:]
        except ssl.SSLError as e:
            log.warning("tls: dropped %s: %s", self._peer, _ssl_reason(e))
            self._done = True
            self.tcp.abort()
            return
        self._flush()

    def close_tls(self) -> None:
        """Our end: close_notify, then the TCP connection once written."""
        if not self._done and not self.tcp.is_closing():
            with contextlib.suppress(ssl.SSLError):
                self.sslobj.unwrap()
            self._flush()
        self.tcp.close()

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and not self.tcp.is_closing():
            self.tcp.write(data)

    # ------------------------------------------------------------ refusal
    def _handshake_expired(self) -> None:
        self._timer = None
        if self.app is None and not self._done:
            self._refuse(f"the TLS handshake did not finish within "
                         f"{self._handshake_timeout:g} s")

    def _end_handshake(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._counted = False
            self._gate.pending -= 1

    def _refuse(self, reason: str) -> None:
        log.warning("tls: refused %s: %s", self._peer, reason)
        self._end_handshake()
        self._done = True
        self.tcp.close()


def set_keepalive(sock: Any) -> None:
    """TCP keepalive as Go's listeners set it (15 s), so a client whose
    machine vanished does not hold a hijacked stream forever."""
    import socket

    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 9)


async def start_tcp_server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
                           sock: Any, context: ssl.SSLContext | None,
                           stream_limit: int, handshake_timeout: float,
                           max_handshakes: int) -> asyncio.Server:
    """Serve a listening TCP socket: its connections reach `handle` as
    streams, through our TLS layer when `context` is given."""
    loop = asyncio.get_running_loop()

    def keepalive_then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        set_keepalive(writer.get_extra_info("socket"))
        return handle(reader, writer)

    if context is None:
        return await asyncio.start_server(keepalive_then, sock=sock, limit=stream_limit)
    gate = HandshakeGate(max_handshakes)

    def app_factory() -> asyncio.Protocol:
        reader = asyncio.StreamReader(limit=stream_limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, keepalive_then, loop=loop)

    return await loop.create_server(
        lambda: TlsServerProtocol(context, app_factory, handshake_timeout, gate), sock=sock)
