"""The TLS listener: mutual TLS, both kinds of half-close on hijacked
streams, and clients that must be refused (no certificate, another CA's,
an expired one, plain HTTP, a handshake that never ends), each with one log
line while the server keeps serving others."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from http_testutil import Seen, _shut_down, body_of, make_router, read_to_eof, read_until

from dockyard.api.app import App
from dockyard.api.server import Limits
from dockyard.certs import issue, make_certs
from dockyard.listeners import Host, TlsSettings, bind_tcp, server_context

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

HIJACK = b"POST /hijack HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Pki:
    dir: Path
    other: Path        # another CA, with its own client certificate

    def client(self, cert: str = "cert.pem", key: str = "key.pem",
               base: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(self.dir / "ca.pem"))
        if cert:
            b = base or self.dir
            ctx.load_cert_chain(str(b / cert), str(b / key))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    make_certs(d, ["localhost", "127.0.0.1"], days=2)
    issue(d, "expired-cert.pem", "expired-key.pem", "late", -1)
    other = tmp_path_factory.mktemp("other-ca")
    make_certs(other, ["localhost"], days=2, server=False)
    return Pki(d, other)


@dataclass
class TlsServer:
    port: int
    app: App
    seen: Seen

    def connect(self, ctx: ssl.SSLContext, timeout: float = 5) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    def ping(self, ctx: ssl.SSLContext) -> bytes:
        with self.connect(ctx) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return read_to_eof(s)


@contextmanager
def tls_server(pki: Pki, verify: bool = True, handshake_timeout: float = 10.0,
               head_timeout: float = 30.0, max_handshakes: int = 256) -> Iterator[TlsServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    seen = Seen()
    app = App(make_router(seen), Limits(tls_handshake_timeout=handshake_timeout,
                                        head_timeout=head_timeout,
                                        max_tls_handshakes=max_handshakes))
    ctx = server_context(TlsSettings(verify, str(pki.dir / "ca.pem"),
                                     str(pki.dir / "server-cert.pem"),
                                     str(pki.dir / "server-key.pem")))
    socks = bind_tcp(Host("tcp", "127.0.0.1", 0))
    bound = asyncio.run_coroutine_threadsafe(app.listen_tcp(socks, ctx), loop).result(5)
    try:
        yield TlsServer(bound[0][1], app, seen)
    finally:
        asyncio.run_coroutine_threadsafe(_shut_down(app), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def server(pki: Pki) -> Iterator[TlsServer]:
    with tls_server(pki) as s:
        yield s


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dockyard.tls"]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_client_with_a_certificate_of_the_ca_is_served(server: TlsServer, pki: Pki):
    got = server.ping(pki.client())
    assert got.startswith(b"HTTP/1.1 200 OK") and body_of(got) == b'"OK"\n'


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_2_is_the_minimum(server: TlsServer, pki: Pki):
    ctx = pki.client()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with server.connect(ctx) as s:
        assert s.version() == "TLSv1.2"
    ctx = pki.client()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        server.connect(ctx).close()


def test_hijacked_stream_after_a_tcp_half_close(server: TlsServer, pki: Pki):
    """A client that shuts down its socket's write side (no close_notify)
    still reads the rest of the stream, as `docker exec -i` needs."""
    payload = os.urandom(3 * 1024 * 1024)
    with server.connect(pki.client(), timeout=20) as s:
        s.sendall(HIJACK)
        head = read_until(s, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        rest = head.split(b"\r\n\r\n", 1)[1]
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        # keep reading while it sends: the echo must not stall on full buffers
        while len(rest) < len(payload) // 2:
            rest += s.recv(65536)
        sender.join()
        # the socket's own shutdown: a FIN under the TLS session, which stays
        socket.socket.shutdown(s, socket.SHUT_WR)
        rest += read_to_eof(s, 20)
    assert rest == payload.upper() + b"[eof]"


def test_hijacked_stream_after_close_notify(server: TlsServer, pki: Pki):
    """Go's tls.Conn.CloseWrite (the docker CLI) sends close_notify and keeps
    reading: the output written after it still arrives."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.client().wrap_bio(incoming, outgoing, server_hostname="localhost")
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)

    def pump_in() -> bool:
        data = raw.recv(65536)
        if not data:
            incoming.write_eof()
            return False
        incoming.write(data)
        return True

    def flush() -> None:
        if data := outgoing.read():
            raw.sendall(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            pump_in()
    flush()
    payload = os.urandom(200_000)
    tls.write(HIJACK + payload)
    flush()
    got = b""

    def read_plain() -> bool:
        nonlocal got
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                return True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return False
            if not data:
                return False
            got += data

    while len(got) < len(payload) // 2:
        pump_in()
        read_plain()
    try:
        tls.unwrap()        # close_notify: our half-close
    except ssl.SSLWantReadError:
        pass
    flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = pump_in()
        more = read_plain()
        if not alive or not more:
            break
    raw.close()
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == payload.upper() + b"[eof]"


def test_large_upload_arrives_intact(server: TlsServer, pki: Pki):
    data = os.urandom(20 * 1024 * 1024)
    with server.connect(pki.client(), timeout=30) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(data) + data)
        got = read_to_eof(s, 30)
    assert hashlib.sha256(data).hexdigest().encode() in body_of(got)


@pytest.mark.parametrize("who", ["no certificate", "another CA", "expired"])
def test_refused_clients(server: TlsServer, pki: Pki, who: str,
                         caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    ctx = {"no certificate": lambda: pki.client(cert=""),
           "another CA": lambda: pki.client(base=pki.other),
           "expired": lambda: pki.client("expired-cert.pem", "expired-key.pem")}[who]()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        # TLS 1.3: the client learns of the refusal when it reads
        s = server.connect(ctx)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        if not s.recv(100):
            raise ConnectionResetError("closed")
    # the server goes on serving the others
    assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
    lines = refusals(caplog)
    assert len(lines) == 1, lines
    reason = {"no certificate": "did not return a certificate",
              "another CA": "unable to get local issuer certificate",
              "expired": "certificate has expired"}[who]
    assert "refused 127.0.0.1:" in lines[0] and reason in lines[0]
    no_tracebacks(caplog)


def test_plain_http_gets_the_answer_go_gives(server: TlsServer, pki: Pki,
                                              caplog: pytest.LogCaptureFixture):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_to_eof(s)
    assert got == (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                   b"Client sent an HTTP request to an HTTPS server.\n")
    assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
    assert ["plain HTTP" in m for m in refusals(caplog)] == [True]


@pytest.mark.parametrize("sends", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"])
def test_a_handshake_that_never_finishes_is_dropped(pki: Pki, sends: bytes,
                                                    caplog: pytest.LogCaptureFixture):
    """A client that connects and says nothing, or half a ClientHello."""
    with tls_server(pki, handshake_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(sends)
            t0 = time.monotonic()
            assert read_to_eof(s, 5) == b""
            assert 0.3 < time.monotonic() - t0 < 3
        assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
    lines = refusals(caplog)
    assert len(lines) == 1 and "did not finish within 0.5 s" in lines[0]
    no_tracebacks(caplog)


def test_many_silent_clients_do_not_block_the_others(pki: Pki):
    with tls_server(pki, handshake_timeout=30) as server:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        try:
            t0 = time.monotonic()
            assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
            assert time.monotonic() - t0 < 2
        finally:
            for s in silent:
                s.close()


def test_handshakes_under_way_are_bounded(pki: Pki, caplog: pytest.LogCaptureFixture):
    with tls_server(pki, handshake_timeout=30, max_handshakes=5) as server:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
        try:
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
                assert read_to_eof(extra, 5) == b""     # dropped at once
            assert ["5 TLS handshakes are already under way" in m
                    for m in refusals(caplog)] == [True]
        finally:
            for s in silent:
                s.close()
        # once they are gone (closed during their handshake), clients are served
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
                break
            except (ssl.SSLError, ConnectionError, AssertionError):
                time.sleep(0.1)
        else:
            raise AssertionError("not served after the silent clients left")


def test_encryption_only_serves_a_client_without_certificate(pki: Pki):
    with tls_server(pki, verify=False) as server:
        assert server.ping(pki.client(cert="")).startswith(b"HTTP/1.1 200")


def test_a_client_that_stops_half_way_through_a_request_is_dropped(pki: Pki):
    """After the handshake the HTTP limits apply as on the unix socket."""
    with tls_server(pki, head_timeout=0.5) as server:
        with server.connect(pki.client()) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            got = read_to_eof(s, 5)
            assert got.startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 3
        assert server.ping(pki.client()).startswith(b"HTTP/1.1 200")
