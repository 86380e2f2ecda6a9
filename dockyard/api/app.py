"""The API application: version prefix, routing, error mapping, server sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
import time
import traceback

from dockyard import API_VERSION, MIN_API_VERSION
from dockyard.api.identity import DEFAULT_HEADERS
from dockyard.api.routes.build import BuildRoutes
from dockyard.api.routes.container_fs import ContainerFilesRoutes
from dockyard.api.routes.container_ops import ContainerOpsRoutes
from dockyard.api.routes.containers import ContainerRoutes
from dockyard.api.routes.distribution import DistributionRoutes
from dockyard.api.routes.execs import ExecRoutes
from dockyard.api.routes.images import ImageRoutes
from dockyard.api.routes.networks import NetworkRoutes
from dockyard.api.routes.swarm import SwarmRoutes
from dockyard.api.routes.system import SystemRoutes
from dockyard.api.routes.volumes import VolumeRoutes
from dockyard.api.server import (
    STREAM_LIMIT,
    ClientGone,
    HttpServer,
    Limits,
    Request,
    Response,
    Router,
    error_response,
    text_response,
)
from dockyard.api.server.tls import start_tcp_server
from dockyard.backend import Backends
from dockyard.errors import DockyardError, InvalidParameter

log = logging.getLogger("dockyard.api")

_VERSION_PREFIX = re.compile(r"^/v([0-9][0-9.]*)(/.*)$")


def parse_version(v: str) -> tuple[int, int]:
    parts = v.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise InvalidParameter(f"invalid API version: {v}") from None


def build_router(backends: Backends) -> Router:
    """Each area's routes get that area's backend, and only it."""
    r = Router()
    for routes in (SystemRoutes(backends.system), ImageRoutes(backends.images),
                   ContainerRoutes(backends.containers), ContainerOpsRoutes(backends.containers),
                   ContainerFilesRoutes(backends.containers), ExecRoutes(backends.execs),
                   DistributionRoutes(backends.images),
                   NetworkRoutes(backends.networks), VolumeRoutes(backends.volumes),
                   BuildRoutes(backends.build),
                   SwarmRoutes(backends.swarm)):
        routes.register(r)
    return r


def app_for(backends: Backends, limits: Limits | None = None) -> App:
    """The daemon's API over one set of backends."""
    return App(build_router(backends), limits)


class App:
    def __init__(self, router: Router, limits: Limits | None = None) -> None:
        self.router = router
        self.max_version = parse_version(API_VERSION)
        self.min_version = parse_version(MIN_API_VERSION)
        self.default_headers = dict(DEFAULT_HEADERS)
        self.server = HttpServer(self.dispatch, self.default_headers, limits)
        self._servers: list[asyncio.AbstractServer] = []
        self._ready: asyncio.Event | None = None

    def hold_until(self, ready: asyncio.Event) -> None:
        """Answer `_ping` at once but every other request only once `ready`
        is set (the engine is still picking up its containers)."""
        self._ready = ready

    async def dispatch(self, req: Request) -> Response:
        t0 = time.perf_counter()
        path = req.path
        m = _VERSION_PREFIX.match(path)
        if m:
            ver = parse_version(m.group(1))
            path = m.group(2)
            if ver < self.min_version:
                return text_response(
                    f"client version {m.group(1)} is too old. Minimum supported API version is "
                    f"{MIN_API_VERSION}, please upgrade your client to a newer version", 400,
                ) if ver < (1, 24) else error_response(
                    400, f"client version {m.group(1)} is too old. Minimum supported API version "
                    f"is {MIN_API_VERSION}, please upgrade your client to a newer version")
            if ver > self.max_version:
                return error_response(
                    400, f"client version {m.group(1)} is too new. Maximum supported API version "
                    f"is {API_VERSION}")
            req.api_version = ver
        else:
            req.api_version = self.max_version
        req.path = path
        if req.method == "OPTIONS":
            return text_response("", 200)
        handler, params, _known = self.router.match(req.method, path)
        if handler is None:
            return error_response(404, "page not found")
        req.params = params
        if self._ready is not None and not self._ready.is_set() and path != "/_ping":
            await self._ready.wait()
        try:
            resp = await handler(req)
        except ClientGone:
            log.info("%s %s: the client left; its request was cancelled", req.method, req.path)
            raise
        except DockyardError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug answers 500, the daemon keeps serving
            log.error("%s %s failed:\n%s", req.method, req.path, traceback.format_exc())
            # the log has the traceback; the client gets no Python internals
            return error_response(500, f"internal error: {e}" if str(e) else "internal error")
        log.debug("%s %s -> %s (%.1f ms)", req.method, req.target, getattr(resp, "status", "?"),
                  (time.perf_counter() - t0) * 1000)
        return resp

    async def listen_unix(self, path: str, group: str | None = "docker", mode: int = 0o660) -> None:
        if os.path.exists(path) or os.path.islink(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        old = os.umask(0o117)
        try:
            srv = await asyncio.start_unix_server(self.server.handle, path, limit=STREAM_LIMIT)
        finally:
            os.umask(old)
        os.chmod(path, mode)
        if group:
            try:
                import grp

                os.chown(path, 0, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError):
                log.warning("group %r not found: socket %s stays root-only", group, path)
        self._servers.append(srv)

    async def listen_tcp(self, sockets: list[socket.socket],
                         context: ssl.SSLContext | None = None) -> list[tuple[str, int]]:
        """Serve on listening TCP sockets (TLS when `context` is given); the
        addresses they are bound to."""
        limits = self.server.limits
        bound = []
        for sock in sockets:
            srv = await start_tcp_server(self.server.handle, sock, context, STREAM_LIMIT,
                                         limits.tls_handshake_timeout, limits.max_tls_handshakes)
            self._servers.append(srv)
            bound.append(sock.getsockname()[:2])
        return bound

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(s.wait_closed(), 1)
        self._servers.clear()
