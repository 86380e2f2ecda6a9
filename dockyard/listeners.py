"""Where the daemon listens, and with which TLS, decided as dockerd decides it.

Hosts (`-H`, daemon.json `hosts`): `unix://PATH` and `tcp://HOST:PORT`, any
number at once.  `tcp://` without a host means localhost, without a port
2375 (dockerd's defaults).

TLS applies to every tcp:// host:
- `--tlsverify` (or `tlsverify: true`): TLS, and a client must present a
  certificate signed by `--tlscacert`, which is the only CA trusted for it;
- `--tls` alone: the same, as dockerd >= 20.10 makes it (client
  verification is on unless `--tlsverify=false` turns it off);
- `--tls --tlsverify=false` (or just `--tlsverify=false`): encryption only,
  any client may connect;
- no TLS option: plain HTTP, which gives root on this machine to anyone who
  can connect.  dockerd warns and goes on; dockyard warns with dockerd's
  words and refuses to start unless the user said `--tls=false`, the
  explicit "I know".  A non-loopback address is never bound without those
  warnings.
Certificates default to `ca.pem`, `cert.pem` and `key.pem` in
$DOCKER_CERT_PATH (else $DOCKER_CONFIG, else ~/.docker), as dockerd's do.
TLS 1.2 is the minimum; ciphers are ECDHE with AES-GCM or ChaCha20.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from dockyard.config import DaemonConfig
from dockyard.errors import InvalidParameter

log = logging.getLogger("dockyard")

DEFAULT_TCP_HOST = "localhost"
DEFAULT_TCP_PORT = 2375
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

INSECURE_WARNINGS = (
    ("Binding to IP address without --tlsverify is insecure and gives root access on this "
    "machine to everyone who has access to your network."),
    ("Binding to an IP address, even on localhost, can also give access to scripts run in a "
    "browser. Be safe out there!"),
)
UNACKNOWLEDGED_WARNINGS = (
    ("Please consider generating tls certificates with client validation to prevent "
    "exposing unauthenticated root access to your network"),
    "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'",
)


@dataclass(frozen=True)
class Host:
    proto: str          # "unix" or "tcp"
    address: str        # socket path, or host name / IP
    port: int = 0

    @property
    def url(self) -> str:
        if self.proto == "unix":
            return f"unix://{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{host}:{self.port}"


@dataclass(frozen=True)
class TlsSettings:
    verify: bool        # client certificates required and checked against cacert
    cacert: str
    cert: str
    key: str

    @property
    def mode(self) -> str:
        return ("TLS, client certificates verified" if self.verify
                else "TLS without client verification (encryption only)")


def parse_host(value: str) -> Host:
    """dockerd's ParseDaemonHost: `-H` values, with its error texts."""
    text = value.strip()
    proto, sep, rest = text.partition("://")
    if not sep:
        proto, rest = "tcp", text
    if proto == "unix":
        if "://" in rest:
            raise InvalidParameter(f"invalid bind address ({value}): invalid unix address: "
                                   f"{rest}")
        return Host("unix", rest or "/run/dockyard.sock")
    if proto == "fd":
        raise InvalidParameter(f"invalid bind address ({value}): fd:// sockets (socket "
                               "activation) are not supported")
    if proto != "tcp":
        raise InvalidParameter(f"invalid bind address ({value}): unsupported proto '{proto}'")
    netloc, slash, _path = rest.partition("/")
    if slash or "?" in netloc or "#" in netloc:
        raise InvalidParameter(f"invalid bind address ({value}): should not contain a path "
                               "element")
    if netloc.startswith("["):
        address, _, after = netloc[1:].partition("]")
        port_text = after[1:]
        if after and not after.startswith(":"):
            raise InvalidParameter(f"invalid bind address ({value}): invalid port: {after}")
    else:
        address, _, port_text = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    port = DEFAULT_TCP_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidParameter(f"invalid bind address ({value}): invalid port: {port_text}")
        port = int(port_text)
    return Host("tcp", address or DEFAULT_TCP_HOST, port)


def cert_dir() -> Path:
    env = os.environ.get("DOCKER_CERT_PATH") or os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def tls_settings(cfg: DaemonConfig) -> TlsSettings | None:
    """None for plain HTTP on tcp:// hosts."""
    enabled = bool(cfg.tls) or cfg.tlsverify is not None
    if not enabled:
        return None
    verify = cfg.tlsverify if cfg.tlsverify is not None else True
    d = cert_dir()
    return TlsSettings(verify=verify,
                       cacert=cfg.tlscacert or str(d / "ca.pem"),
                       cert=cfg.tlscert or str(d / "cert.pem"),
                       key=cfg.tlskey or str(d / "key.pem"))


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The TLS server context; InvalidParameter with the reason when the
    files do not make one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as e:
        raise InvalidParameter(
            f"invalid TLS configuration: could not load X509 key pair (cert: {tls.cert!r}, "
            f"key: {tls.key!r}): {getattr(e, 'strerror', None) or e}") from None
    if tls.verify:
        try:
            ctx.load_verify_locations(cafile=tls.cacert)
        except (OSError, ssl.SSLError) as e:
            raise InvalidParameter(
                f"invalid TLS configuration: could not read CA certificate {tls.cacert!r}: "
                f"{getattr(e, 'strerror', None) or e}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_plain_tcp(host: Host, cfg: DaemonConfig, tls: TlsSettings | None) -> None:
    """dockerd's warnings for a tcp:// host without client verification;
    without TLS and without `--tls=false` the daemon does not start."""
    if host.proto != "tcp" or (tls is not None and tls.verify):
        return
    for line in INSECURE_WARNINGS:
        log.warning("%s host=%s", line, host.url)
    if tls is not None or cfg.tls is False:
        if not is_loopback(host.address):
            log.warning("listening on %s, which is not a loopback address, %s", host.url,
                        "without client verification" if tls else "without TLS")
        return
    for line in UNACKNOWLEDGED_WARNINGS:
        log.warning("%s host=%s", line, host.url)
    raise InvalidParameter(
        f"refusing to listen on {host.url} without TLS: pass --tlsverify with "
        "--tlscacert, --tlscert and --tlskey, or --tls=false to accept an unauthenticated "
        "API on this address")


def bind_tcp(host: Host) -> list[socket.socket]:
    """Listening sockets for a tcp:// host (one per address it resolves to,
    as asyncio would make them), bound before the engine starts, so that a
    taken port stops the start before the engine has made anything."""
    try:
        infos = socket.getaddrinfo(host.address, host.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as e:
        raise InvalidParameter(f"cannot listen on {host.url}: {e.strerror or e}") from None
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _name, addr in infos:
            if (family, addr[0]) in seen:
                continue
            seen.add((family, addr[0]))
            s = socket.socket(family, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr[:2] if family == socket.AF_INET else addr)
            s.listen(512)
            s.setblocking(False)
    except OSError as e:
        for s in socks:
            s.close()
        raise InvalidParameter(f"cannot listen on {host.url}: {e.strerror or e}") from None
    return socks


def plan_listeners(cfg: DaemonConfig) -> tuple[list[Host], TlsSettings | None]:
    """The hosts to listen on and the TLS settings for the tcp ones; every
    check that can fail is done before anything is bound."""
    hosts = [parse_host(h) for h in cfg.hosts if h.strip()]
    if not hosts:
        raise InvalidParameter("no hosts configured")
    tls = tls_settings(cfg)
    if tls is not None:
        server_context(tls)    # the files are checked now, not at the first client
    for h in hosts:
        check_plain_tcp(h, cfg, tls)
    return hosts, tls
