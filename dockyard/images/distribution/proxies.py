"""HTTP proxies for registry traffic, as dockerd takes them (pure).

dockerd sends registry requests through the proxies of its environment
(`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, upper or lower case) or of
daemon.json's `proxies` (`http-proxy`, `https-proxy`, `no-proxy`), which
win.  Which requests bypass them follows Go's `httpproxy` package: never a
proxy for localhost or a loopback address; `NO_PROXY` is a comma-separated
list of `*`, IP addresses, CIDRs, and host names with an optional port
(`example.com` also matches its subdomains, `.example.com` only them).
`/info` shows the proxies with their credentials masked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.errors import InvalidParameter

KEYS = ("http-proxy", "https-proxy", "no-proxy")


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name.upper()) or env.get(name.lower()) or ""


def check_proxy_url(url: str) -> str:
    if not url:
        return url
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as e:
        raise InvalidParameter(f'invalid proxy URL "{url}": {e}') from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(f'invalid proxy URL "{url}": only http:// and https:// '
                               "proxies are supported")
    return parts.geturl()


@dataclass(frozen=True)
class Proxies:
    http: str = ""
    https: str = ""
    no_proxy: str = ""

    @classmethod
    def from_config(cls, conf: Mapping[str, str], env: Mapping[str, str]) -> Proxies:
        """daemon.json's `proxies` where set, else the environment."""
        def pick(key: str, var: str) -> str:
            return conf.get(key) or _env(env, var)

        return cls(check_proxy_url(pick("http-proxy", "http_proxy")),
                   check_proxy_url(pick("https-proxy", "https_proxy")),
                   pick("no-proxy", "no_proxy"))

    def for_url(self, url: str) -> str | None:
        """The proxy a request to `url` goes through, or None."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http
        if not proxy or not parts.hostname:
            return None
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host == "localhost" or _is_loopback(host) or self._bypassed(host, port):
            return None
        return proxy

    def _bypassed(self, host: str, port: int) -> bool:
        for raw in self.no_proxy.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return True
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                net = None
            if net is not None:
                try:
                    if ipaddress.ip_address(host) in net:
                        return True
                except ValueError:
                    pass
                continue
            name, _, want_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
            if want_port and want_port != str(port):
                continue
            if name.startswith("*."):
                name = name[1:]
            if name.startswith("."):
                if host.endswith(name):
                    return True
            elif host == name or host.endswith("." + name):
                return True
        return False

    def shown(self) -> dict[str, str]:
        """`/info`'s HttpProxy, HttpsProxy and NoProxy (credentials masked)."""
        return {"HttpProxy": _mask(self.http), "HttpsProxy": _mask(self.https),
                "NoProxy": self.no_proxy}


def _has_port(entry: str) -> bool:
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _mask(url: str) -> str:
    """dockerd's MaskCredentials: `http://xxxxx:xxxxx@proxy:3128`."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"xxxxx:xxxxx@{host}").geturl()
