"""The volumes area: `/volumes`, Docker-shaped both ways."""

from __future__ import annotations

from typing import Any, Protocol

ApiVersion = tuple[int, int]


class VolumeBackend(Protocol):
    async def create(self, body: Any) -> dict[str, Any]:
        """`POST /volumes/create` with Docker's CreateOptions; the Volume."""
        ...

    def list_volumes(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """`GET /volumes`: {"Volumes": [...], "Warnings": [...]}."""
        ...

    def inspect(self, name: str) -> dict[str, Any]: ...
    async def remove(self, name: str, force: bool = False) -> None: ...
    async def prune(self, filters: dict[str, list[str]], api_version: ApiVersion
                    ) -> dict[str, Any]: ...
