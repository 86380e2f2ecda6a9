"""The engine's error hierarchy.

Every layer below `api/` raises these; one middleware in `api/` maps them to
an HTTP status and Docker's `{"message": ...}` body.  The messages are the
texts Docker clients match on, so keep them exact.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class: an error with an HTTP status a client should see."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DockyardError):
    status = 400


class Unauthorized(DockyardError):
    status = 401


class Forbidden(DockyardError):
    status = 403


class NotFound(DockyardError):
    status = 404


class Conflict(DockyardError):
    status = 409


class NotModified(DockyardError):
    status = 304


class NotImplementedByEngine(DockyardError):
    status = 501


class Unavailable(DockyardError):
    status = 503


class SystemError_(DockyardError):
    """A real failure of the host or a bug: 500."""

    status = 500
