"""The registry HTTP API v2 client: one repository on one endpoint, with
credentials (`RepositoryClient`), over connections shared daemon-wide
(`Transport`).

Authentication follows distribution's client: the first request pings
`/v2/` and keeps the endpoint's challenges; a `Bearer` challenge gets a
token from its realm for the repository's scope (anonymously, with the
user's password as basic auth, or by POSTing the identity token as an OAuth
refresh token), a `Basic` one sends the credentials; a 401 later (an
expired token, a wider scope) is answered once more with a fresh token.
Tokens are cached until they expire.  Redirects are followed by hand so the
Authorization header is dropped whenever one leads to another host (blob
downloads are often redirected to a CDN).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

if TYPE_CHECKING:
    import httpx

from dockyard.errors import DockyardError
from dockyard.images.distribution.auth import (
    AuthConfig,
    Challenge,
    Token,
    parse_token_response,
    parse_www_authenticate,
    scope_text,
)
from dockyard.images.distribution.errors import (
    CredentialsRefused,
    RegistryAuthError,
    RegistryHTTPError,
    RegistryUnreachable,
    parse_error_body,
)
from dockyard.images.distribution.hosts import Endpoint, RegistryHosts

log = logging.getLogger(__name__)

USER_AGENT = "dockyard (docker-compatible registry client)"
CLIENT_ID = "docker"
MAX_REDIRECTS = 10
MAX_SMALL_BODY = 4 << 20          # manifests, configs, tokens, errors
TIMEOUTS: dict[str, float | None] = {"connect": 15.0, "read": 60.0, "write": 60.0,
                                      "pool": None}


def httpx_module() -> Any:
    """httpx, imported when a registry is first contacted: the import costs
    a daemon's start about 40 ms and 8 MB of memory that a daemon which
    never pulls or pushes need not pay."""
    import httpx

    return httpx


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a connection to a registry raises when the network fails."""
    return (httpx_module().TransportError, OSError)
CERTS_RECHECK = 1.0               # seconds between looks at certs.d for one endpoint


def transport_error(method: str, url: str, e: BaseException, proxy: str | None = None
                    ) -> RegistryUnreachable:
    """Go's *url.Error text: `Get "https://h/v2/": <reason>`, with Go's
    words for what users meet most: a refused connection, an unknown host
    (of the registry, or of the proxy the request went through), a plain
    http registry asked for https, a certificate from an unknown CA."""
    reason = str(e) or type(e).__name__
    cause = _root_cause(e)
    dial = urlsplit(proxy or url)
    prefix = "proxyconnect tcp: " if proxy else ""
    if isinstance(cause, socket.gaierror):
        reason = f"{prefix}dial tcp: lookup {dial.hostname}: no such host"
    elif isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        reason = f"{prefix}dial tcp {dial.netloc.rpartition('@')[2]}: connect: connection refused"
    elif "WRONG_VERSION_NUMBER" in reason or "record layer failure" in reason:
        reason = "http: server gave HTTP response to HTTPS client"
    elif "CERTIFICATE_VERIFY_FAILED" in reason and (
            "local issuer" in reason or "self-signed" in reason or "self signed" in reason):
        reason = ("tls: failed to verify certificate: x509: certificate signed by unknown "
                  f"authority ({reason})")
    return RegistryUnreachable(f'{method.capitalize()} "{url}": {reason}')


def _root_cause(e: BaseException) -> BaseException:
    seen = 0
    while seen < 10 and (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
        seen += 1
    return e


class Transport:
    """Connection pools per endpoint and the token cache, daemon-wide."""

    def __init__(self, hosts: RegistryHosts) -> None:
        self.hosts = hosts
        # per endpoint: the client, the certs.d signature it was made with and
        # when that was last compared with the disk
        self._clients: dict[tuple[str, bool], tuple[httpx.AsyncClient, Any, float]] = {}
        self._retired: list[httpx.AsyncClient] = []
        self._challenges: dict[str, list[Challenge]] = {}
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    def client(self, ep: Endpoint) -> httpx.AsyncClient:
        key = (ep.url, ep.verify_tls)
        found = self._clients.get(key)
        now = time.monotonic()
        if found is not None and (not ep.url.startswith("https://")
                                  or now - found[2] < CERTS_RECHECK):
            return found[0]
        signature = self.hosts.certs_signature(ep.host) if ep.url.startswith("https://") \
            else None
        if found is not None and found[1] == signature:
            self._clients[key] = (found[0], signature, now)
            return found[0]
        if found is not None:
            self._retired.append(found[0])     # closed at shutdown: requests may be under way
        ctx = self.hosts.ssl_context(ep)
        hx = httpx_module()
        c = hx.AsyncClient(
            verify=ctx if ctx is not None else True, timeout=hx.Timeout(**TIMEOUTS),
            proxy=self.hosts.proxies.for_url(ep.url),
            headers={"User-Agent": USER_AGENT}, follow_redirects=False, trust_env=False,
            limits=hx.Limits(max_connections=32, max_keepalive_connections=8))
        self._clients[key] = (c, signature, now)
        return c

    async def close(self) -> None:
        for c in [*(v[0] for v in self._clients.values()), *self._retired]:
            await c.aclose()
        self._clients.clear()
        self._retired.clear()

    def error(self, method: str, url: str, e: BaseException) -> RegistryUnreachable:
        return transport_error(method, url, e, self.hosts.proxies.for_url(url))

    def forget_challenges(self, ep: Endpoint) -> None:
        self._challenges.pop(ep.url, None)

    async def challenges(self, ep: Endpoint) -> list[Challenge]:
        """Ping `/v2/` once per endpoint: what authentication it asks for."""
        found = self._challenges.get(ep.url)
        if found is not None:
            return found
        url = f"{ep.url}/v2/"
        try:
            resp = await self.client(ep).get(url)
            await resp.aread()
        except transport_errors() as e:
            raise self.error("GET", url, e) from e
        if resp.status_code not in (200, 401):
            # dockerd goes on (some registries answer 404 here); nothing to authenticate
            log.debug("ping %s: %s", url, resp.status_code)
        found = parse_www_authenticate(resp.headers.get_list("www-authenticate")) \
            if resp.status_code == 401 else []
        self._challenges[ep.url] = found
        return found

    async def token(self, ep: Endpoint, ch: Challenge, scopes: list[str], creds: AuthConfig,
                    offline: bool = False, fresh: bool = False) -> Token:
        """A token for these scopes (cached until it expires; `fresh` after
        the registry refused the cached one)."""
        realm = ch.params.get("realm", "")
        service = ch.params.get("service", "")
        key = (realm, service, " ".join(sorted(scopes)), creds.username, creds.password,
               creds.identity_token, "offline" if offline else "")
        if fresh:
            self._tokens.pop(key, None)
        tok = self._tokens.get(key)
        if tok is not None and tok.expires > time.time() + 5:
            return tok
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.time() + 5:
                return tok
            tok = await self._fetch_token(ep, realm, service, scopes, creds, offline)
            self._tokens[key] = tok
            return tok

    async def _fetch_token(self, ep: Endpoint, realm: str, service: str, scopes: list[str],
                           creds: AuthConfig, offline: bool) -> Token:
        if not realm.startswith(("http://", "https://")):
            raise RegistryUnreachable(f"invalid token realm {realm!r} from {ep.url}")
        realm_ep = Endpoint(_origin(realm), urlsplit(realm).netloc,
                            verify_tls=ep.verify_tls or urlsplit(realm).netloc != ep.host)
        client = self.client(realm_ep)
        if creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            if offline:
                form["access_type"] = "offline"
            req = client.build_request("POST", realm, data=form)
        else:
            params: list[tuple[str, str]] = []
            if service:
                params.append(("service", service))
            params += [("scope", s) for s in scopes]
            headers = {}
            if creds.username or creds.password:
                params.append(("account", creds.username))
                headers["Authorization"] = _basic(creds)
            if offline:
                params += [("client_id", CLIENT_ID), ("offline_token", "true")]
            sep = "&" if "?" in realm else "?"
            req = client.build_request(
                "GET", realm + (sep + urlencode(params) if params else ""), headers=headers)
        try:
            resp = await client.send(req, stream=True)
            try:
                body = await _read_limited(resp)
            finally:
                await resp.aclose()
        except transport_errors() as e:
            raise self.error(req.method, realm, e) from e
        if resp.status_code != 200:
            err = parse_error_body(resp.status_code, body, realm)
            if resp.status_code in (401, 403):
                raise CredentialsRefused(err.text)
            raise RegistryUnreachable(f"token server {realm}: {err.text}")
        try:
            return parse_token_response(body)
        except (ValueError, RecursionError) as e:
            raise RegistryUnreachable(f"unable to decode token response: {e}") from None


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


def _basic(creds: AuthConfig) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def _read_limited(resp: httpx.Response, limit: int = MAX_SMALL_BODY) -> bytes:
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += chunk
        if len(buf) > limit:
            await resp.aclose()
            raise RegistryUnreachable(f"{resp.request.url}: answer larger than {limit} bytes")
    return bytes(buf)


class RepositoryClient:
    """One repository (`t/bb`) on one endpoint, with the user's credentials
    and the actions (`pull`, `push`) the scope asks for."""

    def __init__(self, transport: Transport, ep: Endpoint, path: str, creds: AuthConfig,
                 actions: tuple[str, ...] = ("pull",)) -> None:
        self.transport = transport
        self.ep = ep
        self.path = path
        self.creds = creds
        self.actions = actions
        self.extra_scopes: list[str] = []
        self._auth: str | None = None
        self._auth_ready = False

    @property
    def base(self) -> str:
        return f"{self.ep.url}/v2/{self.path}"

    def scopes(self) -> list[str]:
        return [scope_text(self.path, self.actions), *self.extra_scopes]

    async def _authorization(self, challenges: list[Challenge] | None = None,
                             refresh: bool = False) -> str | None:
        if self._auth_ready and not refresh:
            return self._auth
        if self.creds.registry_token:
            self._auth, self._auth_ready = f"Bearer {self.creds.registry_token}", True
            return self._auth
        if challenges is None:
            challenges = await self.transport.challenges(self.ep)
        auth = None
        for ch in challenges:
            if ch.scheme == "bearer":
                scopes = self.scopes()
                extra = ch.params.get("scope")
                if refresh and extra and extra not in scopes:
                    scopes.append(extra)
                tok = await self.transport.token(self.ep, ch, scopes, self.creds,
                                                 fresh=refresh)
                auth = f"Bearer {tok.value}"
                break
            if ch.scheme == "basic":
                if not (self.creds.username or self.creds.password):
                    raise CredentialsRefused("no basic auth credentials")
                auth = _basic(self.creds)
                break
        self._auth, self._auth_ready = auth, True
        return auth

    async def basic_header(self) -> str:
        return _basic(self.creds)

    async def _send(self, method: str, url: str, headers: Mapping[str, str] | None,
                    content: Any, stream: bool) -> httpx.Response:
        client = self.transport.client(self.ep)
        hdrs = dict(headers or {})
        try:
            return await self._send_authorized(client, method, url, hdrs, content, stream)
        except CredentialsRefused as e:
            raise RegistryAuthError(f'{method.capitalize()} "{url}": {e}') from None

    async def _send_authorized(self, client: httpx.AsyncClient, method: str, url: str,
                               hdrs: dict[str, str], content: Any, stream: bool
                               ) -> httpx.Response:
        auth = await self._authorization()
        for attempt in range(2):
            if auth and _origin(url) == self.ep.url:
                hdrs["Authorization"] = auth
            else:
                hdrs.pop("Authorization", None)
            target = url
            for _ in range(MAX_REDIRECTS + 1):
                req = client.build_request(method, target, headers=hdrs, content=content)
                try:
                    resp = await client.send(req, stream=True)
                except transport_errors() as e:
                    raise self.transport.error(method, target, e) from e
                if resp.status_code in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") \
                        and "location" in resp.headers:
                    await resp.aclose()
                    nxt = urljoin(target, resp.headers["location"])
                    if _origin(nxt) != _origin(target):
                        hdrs.pop("Authorization", None)   # never to another host (a CDN)
                    target = nxt
                    continue
                break
            else:
                await resp.aclose()
                raise RegistryUnreachable(f'{method.capitalize()} "{url}": stopped after '
                                          f"{MAX_REDIRECTS} redirects")
            if resp.status_code == 401 and attempt == 0 and not self.creds.registry_token \
                    and (content is None or isinstance(content, bytes)):
                challenges = parse_www_authenticate(resp.headers.get_list("www-authenticate"))
                if not challenges:
                    break
                await resp.aclose()
                auth = await self._authorization(challenges, refresh=True)
                continue
            break
        if not stream:
            try:
                await resp.aread()
            except transport_errors() as e:
                raise self.transport.error(method, url, e) from e
        return resp

    async def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                      content: Any = None, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        """A whole answer; RegistryHTTPError for a status not in `ok`."""
        resp = await self._send(method, url, headers, content, stream=False)
        if resp.status_code not in ok:
            raise parse_error_body(resp.status_code, resp.content, url,
                                   resp.headers.get_list("www-authenticate"))
        return resp

    @asynccontextmanager
    async def stream(self, url: str, headers: Mapping[str, str] | None = None
                     ) -> AsyncIterator[httpx.Response]:
        """A GET whose body is read as it comes (a blob)."""
        resp = await self._send("GET", url, headers, None, stream=True)
        try:
            yield resp
        finally:
            await resp.aclose()

    async def error_of(self, resp: httpx.Response) -> RegistryHTTPError:
        unreadable: tuple[type[BaseException], ...] = (DockyardError, *transport_errors())
        try:
            body = await _read_limited(resp)
        except unreadable:
            body = b""
        return parse_error_body(resp.status_code, body, str(resp.request.url),
                                resp.headers.get_list("www-authenticate"))
