"""The images area: the local store, archives, and registries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ImageListOptions:
    all: bool = False
    filters: dict[str, list[str]] = field(default_factory=dict)
    digests: bool = False


@dataclass(frozen=True)
class ImportOptions:
    repo: str = ""
    tag: str = ""
    message: str = ""
    changes: list[str] = field(default_factory=list)
    platform: str = ""


@dataclass(frozen=True)
class PullOptions:
    image: str
    tag: str = ""
    platform: str = ""
    auth: str = ""                 # the X-Registry-Auth header, as sent


@dataclass(frozen=True)
class PushOptions:
    name: str
    tag: str = ""
    auth: str = ""                 # the X-Registry-Auth header, as sent
    # without that header: the credentials JSON an old client sends as the body
    auth_body: dict[str, Any] | None = None


class ImageBackend(Protocol):
    async def list_images(self, opts: ImageListOptions) -> list[dict[str, Any]]: ...
    def inspect(self, name: str) -> dict[str, Any]: ...
    async def history(self, name: str) -> list[dict[str, Any]]: ...
    async def tag(self, name: str, repo: str, tag: str = "") -> str: ...
    async def remove(self, name: str, force: bool = False, noprune: bool = False
                     ) -> list[dict[str, str]]: ...
    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]: ...

    def load(self, chunks: AsyncIterator[bytes], quiet: bool) -> AsyncIterator[dict[str, Any]]:
        """Progress and result records of `docker load`."""
        ...

    def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """A docker-archive tarball of the named images."""
        ...

    def import_image(self, chunks: AsyncIterator[bytes], opts: ImportOptions
                     ) -> AsyncIterator[dict[str, Any]]: ...

    def pull(self, opts: PullOptions) -> AsyncIterator[dict[str, Any]]:
        """Progress records of `docker pull`; a failure before the first
        record is raised when the first record is asked for."""
        ...

    def push(self, opts: PushOptions) -> AsyncIterator[dict[str, Any]]:
        """Progress records of `docker push`; a failure before the first
        record is raised when the first record is asked for."""
        ...

    async def login(self, auth: dict[str, Any]) -> dict[str, Any]:
        """`POST /auth`: check credentials with the registry; Docker's
        AuthenticateOKBody (`Status`, `IdentityToken`)."""
        ...

    async def distribution_inspect(self, name: str, auth: str) -> dict[str, Any]:
        """`GET /distribution/{name}/json`: the descriptor and platforms the
        registry has for a reference."""
        ...

    async def search(self, term: str, limit: int | None) -> list[dict[str, Any]]: ...
