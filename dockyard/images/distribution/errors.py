"""A registry's error answers, in dockerd's words (pure).

A registry explains a failure with `{"errors": [{"code": "MANIFEST_UNKNOWN",
"message": "manifest unknown", "detail": ...}]}`; dockerd shows the first
as `manifest unknown: manifest unknown` (the code in lower case with spaces,
then the message) and, for a pull, wraps the not-found kinds in the texts
users know (`manifest for x:1 not found: ...`, `pull access denied for x,
repository does not exist or may require 'docker login': ...`).  An answer
that is no such JSON is reported with its status and the first bytes of
the body, never trusted further.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.distribution.auth import parse_www_authenticate

NOT_FOUND_CODES = ("DENIED", "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
_STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                405: "Method Not Allowed", 409: "Conflict", 416: "Requested Range Not "
                "Satisfiable", 429: "Too Many Requests", 500: "Internal Server Error",
                502: "Bad Gateway", 503: "Service Unavailable"}


def status_text(status: int) -> str:
    return f"{status} {_STATUS_TEXT.get(status, '')}".strip()


class RegistryUnreachable(DockyardError):
    """The registry could not be reached or answered nonsense (a transport
    failure, not the client's request): dockerd's own texts, and its 500."""

    status = 500


class RegistryAuthError(DockyardError):
    """The registry refused the credentials of a pull or push, or asked for
    some and there were none.  dockerd answers these with 500 (errdefs'
    Unknown), not 401: a 401 would make the docker CLI prompt for a login
    in the middle of a pull."""

    status = 500


class CredentialsRefused(Exception):
    """Raised while authorizing a request (no basic credentials, a token
    server's refusal); the client reports it with the request's method and
    URL, as Go's *url.Error does."""


@dataclass
class RegistryErrorDetail:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code.lower().replace('_', ' ')}: {self.message}"


class RegistryHTTPError(Exception):
    """A registry's non-success answer."""

    def __init__(self, status: int, errors: list[RegistryErrorDetail], text: str,
                 url: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.errors = errors
        self.text = text
        self.url = url

    @property
    def code(self) -> str:
        return self.errors[0].code if self.errors else ""


# RFC 6750's error codes in a Bearer challenge, as distribution's client reads them
_BEARER_ERRORS = {"invalid_token": ("UNAUTHORIZED", "authentication required"),
                  "insufficient_scope": ("DENIED", "requested access to the resource is denied")}


def parse_error_body(status: int, body: bytes, url: str = "",
                     www_authenticate: list[str] | None = None) -> RegistryHTTPError:
    """The registry's error: a Bearer challenge's `error` first (a token
    without the scope asked for is `denied`, as distribution's client says),
    then the JSON errors of the body, else its status and body."""
    if 400 <= status < 500 and www_authenticate:
        for ch in parse_www_authenticate(www_authenticate):
            known = _BEARER_ERRORS.get(ch.params.get("error", "")) \
                if ch.scheme == "bearer" else None
            if known:
                first = RegistryErrorDetail(known[0], ch.params.get("error_description")
                                            or known[1])
                rest = parse_error_body(status, body, url)
                return RegistryHTTPError(status, [first, *rest.errors], str(first), url)
    details: list[RegistryErrorDetail] = []
    try:
        doc = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        snippet = body[:80].decode("utf-8", "replace")
        return RegistryHTTPError(
            status, [], f"error parsing HTTP {status} response body: invalid character "
            f"looking for beginning of value: {json.dumps(snippet)}", url)
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for e in doc["errors"]:
            if isinstance(e, dict) and isinstance(e.get("code"), str):
                msg = e.get("message")
                details.append(RegistryErrorDetail(e["code"], msg if isinstance(msg, str)
                                                   else ""))
    if details:
        return RegistryHTTPError(status, details, str(details[0]), url)
    if status == 401:
        return RegistryHTTPError(status, [RegistryErrorDetail(
            "UNAUTHORIZED", "authentication required")], "unauthorized: authentication required",
            url)
    if status == 404:
        return RegistryHTTPError(status, [], "not found", url)
    return RegistryHTTPError(status, [], f"unexpected status code {status_text(status)}", url)


def pull_error(e: RegistryHTTPError, familiar_name: str, familiar_ref: str) -> DockyardError:
    """dockerd's translatePullError."""
    code = e.code
    if code == "DENIED":
        return NotFound(f"pull access denied for {familiar_name}, repository does not exist "
                        f"or may require 'docker login': {e.text}")
    if code == "MANIFEST_UNKNOWN":
        return NotFound(f"manifest for {familiar_ref} not found: {e.text}")
    if code == "NAME_UNKNOWN":
        return NotFound(f"repository {familiar_name} not found: {e.text}")
    if code == "UNAUTHORIZED" or e.status == 401:
        return RegistryAuthError(e.text)
    if e.status == 404:
        return NotFound(f"manifest for {familiar_ref} not found: manifest unknown: "
                        f"{e.text}")
    if 400 <= e.status < 500:
        return InvalidParameter(e.text)
    return RegistryUnreachable(e.text)


def push_error(e: RegistryHTTPError) -> DockyardError:
    if e.code in ("DENIED", "UNAUTHORIZED") or e.status in (401, 403):
        return RegistryAuthError(e.text)
    if e.status == 404:
        return NotFound(e.text)
    if 400 <= e.status < 500:
        return InvalidParameter(e.text)
    return RegistryUnreachable(e.text)
