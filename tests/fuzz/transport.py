"""HTTP over the daemon's unix socket for the fuzz lane, with every request
bounded in time and size.

Some operations answer with a stream that only ends when the client leaves
(events, logs and stats that follow, attach, exec start): the body is read
until the request's deadline or the size cap, then the connection is closed
and the response is marked as cut short.  An operation that gives no
response head before its deadline raises `Timeout`; the caller decides
whether that operation may block (a wait on a running container) or hung.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

# schemathesis reads this attribute into `Response.stream_cut_short`
from schemathesis.core.transport import STREAM_CUT_SHORT_ATTRIBUTE
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

# the response head must arrive within this; bodies are read until the
# request's own deadline
HEAD_TIMEOUT = 30.0
MAX_BODY = 8 << 20


class Timeout(Exception):
    """No response head before the deadline."""

    def __init__(self, method: str, url: str, seconds: float) -> None:
        super().__init__(f"{method} {url}: no response within {seconds:.1f} s")
        self.seconds = seconds


class _UnixConnection(HTTPConnection):
    def __init__(self, socket_path: str, registry: _Current, **kw: Any) -> None:
        super().__init__("localhost", **kw)
        self._socket_path = socket_path
        self._registry = registry

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else None)
        sock.connect(self._socket_path)
        self.sock = sock
        self._registry.sock = sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, socket_path: str, registry: _Current) -> None:
        super().__init__("localhost", maxsize=1)
        self._socket_path = socket_path
        self._registry = registry

    def _new_conn(self) -> HTTPConnection:
        return _UnixConnection(self._socket_path, self._registry, timeout=self.timeout.connect_timeout)


class _Current(threading.local):
    sock: socket.socket | None = None


@dataclass
class Exchange:
    """One request as sent and what came back, for the lane's statistics."""

    method: str
    path: str
    status: int | None
    seconds: float
    cut_short: bool = False


@dataclass
class Ledger:
    exchanges: list[Exchange] = field(default_factory=list)

    def add(self, ex: Exchange) -> None:
        self.exchanges.append(ex)


class BoundedUnixAdapter(HTTPAdapter):
    """A requests adapter that sends every request on a new connection to
    one unix socket and reads the answer within a deadline."""

    def __init__(self, socket_path: str, ledger: Ledger) -> None:
        self._current = _Current()
        self._pool = _UnixPool(socket_path, self._current)
        self.ledger = ledger
        # the deadline of the next request; the caller sets it per operation
        self.deadline = 10.0
        super().__init__()

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any,
                                        proxies: Any = None, cert: Any = None) -> HTTPConnectionPool:
        return self._pool

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        return request.path_url

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        # one connection per request: a hijacked connection is never reused
        request.headers["Connection"] = "close"
        deadline = self.deadline
        start = time.monotonic()
        self._current.sock = None
        try:
            resp = super().send(request, stream=True, timeout=(5.0, min(deadline, HEAD_TIMEOUT)),
                                verify=verify, cert=cert, proxies=proxies)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
            if time.monotonic() - start >= min(deadline, HEAD_TIMEOUT) - 0.05:
                self._record(request, None, start, False)
                raise Timeout(request.method or "?", request.path_url, deadline) from e
            raise
        body, cut = self._read(resp, start + deadline)
        resp._content = body
        resp._content_consumed = True  # type: ignore[attr-defined]
        setattr(resp, STREAM_CUT_SHORT_ATTRIBUTE, cut)
        resp.close()
        self._record(request, resp.status_code, start, cut)
        return resp

    def _read(self, resp: requests.Response, until: float) -> tuple[bytes, bool]:
        raw: urllib3.HTTPResponse = resp.raw
        chunks: list[bytes] = []
        size = 0
        while True:
            left = until - time.monotonic()
            if left <= 0 or size >= MAX_BODY:
                return b"".join(chunks), True
            sock = self._current.sock
            if sock is not None and sock.fileno() != -1:
                sock.settimeout(left)
            try:
                chunk = raw.read1(64 * 1024, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            size += len(chunk)

    def _record(self, request: requests.PreparedRequest, status: int | None, start: float,
                cut: bool) -> None:
        self.ledger.add(Exchange(request.method or "?", request.path_url.split("?", 1)[0],
                                 status, time.monotonic() - start, cut))

    def close(self) -> None:
        self._pool.close()
        super().close()


def make_session(socket_path: str, ledger: Ledger) -> tuple[requests.Session, BoundedUnixAdapter]:
    """A session whose every request goes to the daemon's socket."""
    session = requests.Session()
    adapter = BoundedUnixAdapter(socket_path, ledger)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session, adapter
