"""Registry credentials and challenges (pure).

* `decode_auth_header`: the `X-Registry-Auth` header (base64url JSON with
  username/password, an identity token or a registry token), decoded as
  dockerd decodes it: padding optional, a bad header is no credentials.
* `parse_www_authenticate`: RFC 7235 challenges (`Bearer realm="...",
  service="...", scope="..."`, `Basic realm="..."`), quoted strings with
  escapes, several challenges in one header.
* `Scope` texts (`repository:t/bb:pull,push`) and the token server's answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    identity_token: str = ""       # an OAuth refresh token (docker login's IdentityToken)
    registry_token: str = ""       # a bearer token to send as is
    server_address: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token
                    or self.registry_token)

    @classmethod
    def from_json(cls, obj: Any) -> AuthConfig:
        if not isinstance(obj, dict):
            return cls()

        # Go's decoder matches field names in any case
        folded: dict[str, Any] = {}
        for k, v in obj.items():
            if isinstance(k, str):
                folded.setdefault(k.lower(), v)

        def s(*keys: str) -> str:
            for k in keys:
                v = folded.get(k.lower())
                if isinstance(v, str) and v:
                    return v
            return ""

        username, password = s("username"), s("password")
        legacy = s("auth")
        if legacy and not username:
            # the config file's "auth": base64 of user:password
            try:
                username, _, password = _b64decode(legacy).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        return cls(username, password, s("identitytoken"), s("registrytoken"),
                   s("serveraddress"))


def _b64decode(text: str) -> bytes:
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def decode_auth_header(value: str | None) -> AuthConfig:
    """`X-Registry-Auth` -> credentials; anything unreadable is none (dockerd
    ignores a header it cannot decode)."""
    if not value:
        return AuthConfig()
    try:
        return AuthConfig.from_json(json.loads(_b64decode(value)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return AuthConfig()


@dataclass(frozen=True)
class Challenge:
    scheme: str                              # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _token(s: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(s) and s[j] in _TOKEN_CHARS:
        j += 1
    return s[i:j], j


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _quoted(s: str, i: int) -> tuple[str, int]:
    """A quoted string starting at s[i] == '"'; ("", -1) if unterminated."""
    out = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "", -1


def parse_www_authenticate(values: list[str]) -> list[Challenge]:
    """Every challenge in the given header values; malformed parts are
    dropped, as distribution's challenge parser drops them."""
    out: list[Challenge] = []
    for value in values:
        i, n = 0, len(value)
        current: Challenge | None = None
        while i < n:
            i = _skip_space(value, i)
            if i < n and value[i] == ",":
                i += 1
                continue
            name, j = _token(value, i)
            if not name:
                break
            k = _skip_space(value, j)
            if k < n and value[k] == "=" and current is not None:
                k = _skip_space(value, k + 1)
                if k < n and value[k] == '"':
                    v, k = _quoted(value, k)
                    if k < 0:
                        break
                else:
                    v, k = _token(value, k)
                current.params[name.lower()] = v
                i = k
                continue
            # a new challenge: a scheme name, then its parameters
            current = Challenge(name.lower(), {})
            out.append(current)
            i = j
    return out


def scope_text(repository: str, actions: tuple[str, ...]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


@dataclass
class Token:
    value: str
    expires: float
    refresh_token: str = ""


MIN_TOKEN_LIFETIME = 60          # seconds, distribution's minimum


def parse_token_response(body: bytes, now: float | None = None) -> Token:
    """The token server's JSON: `token` (or OAuth's `access_token`), an
    optional lifetime and refresh token; ValueError when unusable."""
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("token response is not a JSON object")  # noqa: TRY004 - bad data
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("authorization server did not include a token in the response")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) \
            or lifetime < MIN_TOKEN_LIFETIME:
        lifetime = MIN_TOKEN_LIFETIME
    refresh = doc.get("refresh_token")
    start = time.time() if now is None else now
    return Token(value, start + lifetime, refresh if isinstance(refresh, str) else "")
