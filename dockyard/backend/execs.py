"""The exec area: extra processes in running containers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.backend.streams import OutputSink, StdinSource


@dataclass(frozen=True)
class ExecStartOptions:
    tty: bool = False                       # the start request's; decides the framing
    console_size: list[int] | None = None   # [height, width]
    detach: bool = False


class ExecBackend(Protocol):
    async def create(self, ref: str, body: Any, api_version: tuple[int, int]) -> str:
        """`POST /containers/{id}/exec` with Docker's ExecConfig; the exec's id."""
        ...

    def inspect(self, exec_id: str) -> dict[str, Any]: ...

    def check_startable(self, exec_id: str) -> None:
        """404/409 before the connection is taken over."""
        ...

    async def start_detached(self, exec_id: str, opts: ExecStartOptions) -> None: ...

    async def start_attached(self, exec_id: str, opts: ExecStartOptions,
                             stdin: StdinSource, out: OutputSink) -> None:
        """Run the exec with the client's streams; errors after the takeover
        are written to `out` as text, which is what the CLI prints."""
        ...

    async def resize(self, exec_id: str, height: int, width: int) -> None: ...

    def start_options(self, body: Any, api_version: tuple[int, int]) -> ExecStartOptions:
        """`POST /exec/{id}/start`'s body (Docker's ExecStartConfig), checked."""
        ...
