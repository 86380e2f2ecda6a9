"""Where a registry name leads: endpoints, mirrors, TLS (dockerd's registry
service configuration).

* `docker.io` pulls try each `registry-mirrors` URL first, then
  https://registry-1.docker.io; pushes and logins never go to a mirror.
* Any other host is tried over https; an insecure one (listed in
  `insecure-registries` by name or CIDR, or localhost and 127.0.0.0/8 and
  ::1, which are insecure by default as in Docker) then over plain http,
  and its https certificate is not verified.
* CA certificates (`*.crt`) and client key pairs (`*.cert` + `*.key`) for
  `host[:port]` come from `<config dir>/certs.d/<host>/` (the directory of
  the daemon's configuration file, /etc/dockyard by default) and from
  Docker's `/etc/docker/certs.d/<host>/`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dockyard.errors import InvalidParameter
from dockyard.images.distribution.proxies import Proxies

log = logging.getLogger(__name__)

INDEX_NAME = "docker.io"
INDEX_HOST = "registry-1.docker.io"
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


def validate_mirror(url: str) -> str:
    """dockerd's ValidateMirror: an http(s) URL with nothing after the host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as e:
        raise InvalidParameter(f'invalid mirror: "{url}": {e}') from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParameter(f'invalid mirror: unsupported scheme "{parts.scheme}" in "{url}"')
    if (parts.path not in ("", "/")) or parts.query or parts.fragment or parts.username:
        raise InvalidParameter(
            f'invalid mirror: path, query, or fragment at end of the URI "{url}"')
    if not parts.netloc:
        raise InvalidParameter(f'invalid mirror: no host in "{url}"')
    return f"{parts.scheme}://{parts.netloc}/"


def validate_insecure(entry: str) -> str:
    """An insecure-registries entry: a CIDR or host[:port], no scheme."""
    if "://" in entry:
        raise InvalidParameter(f"insecure registry {entry} should not contain '://'")
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise InvalidParameter(f"insecure registry {entry} is not a valid CIDR") from None
    elif not entry:
        raise InvalidParameter("insecure registry cannot be empty")
    return entry


@dataclass(frozen=True)
class Endpoint:
    url: str                  # scheme://host[:port], no trailing slash
    host: str                 # the registry host[:port] this serves (for certs, auth)
    mirror: bool = False
    verify_tls: bool = True


@dataclass
class RegistryHosts:
    mirrors: list[str] = field(default_factory=list)
    insecure: list[str] = field(default_factory=list)
    certs_dirs: list[Path] = field(default_factory=lambda: [DOCKER_CERTS_DIR])
    proxies: Proxies = field(default_factory=Proxies)

    def __post_init__(self) -> None:
        self.mirrors = [validate_mirror(m) for m in self.mirrors]
        self.insecure = [validate_insecure(i) for i in self.insecure]

    def is_insecure(self, host: str) -> bool:
        if host in self.insecure:
            return True
        name = _hostname(host)
        if name == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        for cidr in (*DEFAULT_INSECURE_CIDRS, *(i for i in self.insecure if "/" in i)):
            net = ipaddress.ip_network(cidr, strict=False)
            if ip.version == net.version and ip in net:
                return True
        return False

    def pull_endpoints(self, domain: str) -> list[Endpoint]:
        if domain == INDEX_NAME:
            out = []
            for m in self.mirrors:
                parts = urlsplit(m)
                insecure = parts.scheme == "http" or self.is_insecure(parts.netloc)
                out.append(Endpoint(f"{parts.scheme}://{parts.netloc}", parts.netloc, True,
                                    not insecure))
            return [*out, *self.push_endpoints(domain)]
        return self.push_endpoints(domain)

    def push_endpoints(self, domain: str) -> list[Endpoint]:
        if domain == INDEX_NAME:
            return [Endpoint(f"https://{INDEX_HOST}", INDEX_HOST)]
        if self.is_insecure(domain):
            return [Endpoint(f"https://{domain}", domain, verify_tls=False),
                    Endpoint(f"http://{domain}", domain, verify_tls=False)]
        return [Endpoint(f"https://{domain}", domain)]

    def certs_signature(self, host: str) -> tuple[tuple[str, int, int], ...]:
        """What certs.d holds for `host` now (names, sizes, mtimes): a
        changed signature means the TLS settings must be read again, so a
        CA added while the daemon runs is used by the next pull, as in Docker."""
        found = []
        for base in self.certs_dirs:
            try:
                entries = sorted(os.scandir(base / host), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                try:
                    st = e.stat()
                except OSError:
                    continue
                found.append((e.path, st.st_size, st.st_mtime_ns))
        return tuple(found)

    def ssl_context(self, ep: Endpoint) -> ssl.SSLContext | None:
        """The TLS settings for an https endpoint, from certs.d as it is now."""
        if not ep.url.startswith("https://"):
            return None
        return self._make_ssl(ep.host, ep.verify_tls)

    def _make_ssl(self, host: str, verify: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for base in self.certs_dirs:
            d = base / host
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                try:
                    if f.suffix == ".crt":
                        ctx.load_verify_locations(cafile=str(f))
                    elif f.suffix == ".cert":
                        key = f.with_suffix(".key")
                        if not key.exists():
                            raise InvalidParameter(
                                f"missing key {key.name} for client certificate {f.name}")
                        ctx.load_cert_chain(str(f), str(key))
                    elif f.suffix == ".key" and not f.with_suffix(".cert").exists():
                        raise InvalidParameter(
                            f"missing client certificate {f.stem}.cert for key {f.name}")
                except (ssl.SSLError, OSError) as e:
                    raise InvalidParameter(f"{f}: {e}") from None
        return ctx


def _hostname(host: str) -> str:
    """host[:port] -> host (brackets of an IPv6 literal removed)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host
