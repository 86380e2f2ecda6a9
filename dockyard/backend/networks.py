"""The networks area: `/networks` and the endpoints of containers on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class NetworkCreateResult:
    id: str
    warning: str = ""


class NetworkBackend(Protocol):
    async def create(self, body: Any) -> NetworkCreateResult:
        """`POST /networks/create` with Docker's NetworkCreateRequest."""
        ...

    def list_networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]: ...
    def inspect(self, ref: str, scope: str = "") -> dict[str, Any]:
        """`scope`: found only within it (local, swarm), as dockerd looks up."""
        ...

    async def remove(self, ref: str) -> None: ...
    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]: ...
    # bodies as sent (Docker's network.ConnectOptions / DisconnectOptions)
    async def connect(self, ref: str, body: Any) -> None: ...
    async def disconnect(self, ref: str, body: Any) -> None: ...
