"""The containers area: state, attach, monitoring and files of containers.

Requests that carry Docker's own JSON (a create body, an update body, a
commit's config) pass it through as it came: those shapes *are* the
interface, and the engine checks them with Docker's texts.  Query
parameters become the small option dataclasses below.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockyard.backend.streams import OutputSink, StdinSource

ApiVersion = tuple[int, int]
LATEST: ApiVersion = (1, 51)


# ----------------------------------------------------------------- options

@dataclass(frozen=True)
class ListOptions:
    all: bool = False
    limit: int | None = None
    size: bool = False
    filters: dict[str, list[str]] = field(default_factory=dict)
    api_version: ApiVersion = LATEST


@dataclass(frozen=True)
class InspectOptions:
    size: bool = False
    api_version: ApiVersion = LATEST


@dataclass(frozen=True)
class StopOptions:
    timeout: int | None = None          # seconds; None: the container's StopTimeout
    signal: str | None = None           # None: the container's StopSignal


@dataclass(frozen=True)
class RemoveOptions:
    force: bool = False
    volumes: bool = False
    link: bool = False           # remove the legacy link named `<linker>/<alias>` instead


@dataclass(frozen=True)
class CreateResult:
    id: str
    warnings: list[str]


@dataclass(frozen=True)
class WaitResult:
    status_code: int
    error: str | None = None


@dataclass(frozen=True)
class AttachOptions:
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    stream: bool = False
    logs: bool = False
    detach_keys: str | None = None      # Docker's syntax ("ctrl-p,ctrl-q"); None: default


@dataclass(frozen=True)
class AttachPlan:
    """A checked attach, before the connection is taken over.

    `tty` decides the framing (raw with a terminal, multiplexed without);
    `run` then bridges the client's streams until the process ends, the
    client detaches or goes away."""

    tty: bool
    run: Callable[[StdinSource, OutputSink], Awaitable[None]]


@dataclass(frozen=True)
class LogsOptions:
    stdout: bool = False
    stderr: bool = False
    since: str = ""                     # Docker's timestamp forms; "" = from the start
    until: str = ""
    tail: str = "all"                   # a count or "all"
    timestamps: bool = False
    follow: bool = False
    details: bool = False               # each line after its attributes and a space


@dataclass(frozen=True)
class LogStream:
    tty: bool
    # (stream, payload) records in batches of those read together; each
    # record is one frame to the client
    batches: AsyncIterator[list[tuple[int, bytes]]]


@dataclass(frozen=True)
class StatsOptions:
    stream: bool = True
    one_shot: bool = False


@dataclass(frozen=True)
class ExtractOptions:
    copy_uid_gid: bool = False
    no_overwrite_dir_non_dir: bool = False


@dataclass(frozen=True)
class CommitOptions:
    container: str
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None     # Docker's ContainerConfig to apply


# ----------------------------------------------------------------- roles

class ContainerStateBackend(Protocol):
    async def create(self, body: Any, name: str | None, platform: str | None
                     ) -> CreateResult: ...
    def list_containers(self, opts: ListOptions) -> list[dict[str, Any]]: ...
    def inspect(self, ref: str, opts: InspectOptions) -> dict[str, Any]: ...
    async def start(self, ref: str) -> None: ...
    async def stop(self, ref: str, opts: StopOptions) -> None: ...
    async def restart(self, ref: str, opts: StopOptions) -> None: ...
    async def kill(self, ref: str, signal: str | None) -> None: ...
    async def pause(self, ref: str) -> None: ...
    async def unpause(self, ref: str) -> None: ...
    async def rename(self, ref: str, new_name: str) -> None: ...
    async def remove(self, ref: str, opts: RemoveOptions) -> None: ...
    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]: ...
    async def update(self, ref: str, body: Any, api_version: ApiVersion) -> list[str]:
        """`POST /containers/{id}/update` with Docker's UpdateConfig; the warnings."""
        ...

    def wait(self, ref: str, condition: str) -> Awaitable[WaitResult]:
        """Checks now (unknown container, bad condition); the awaitable
        completes when the condition is met."""
        ...


class ContainerAttachBackend(Protocol):
    def attach(self, ref: str, opts: AttachOptions) -> AttachPlan: ...
    async def resize(self, ref: str, height: int, width: int) -> None: ...


class ContainerMonitorBackend(Protocol):
    def logs(self, ref: str, opts: LogsOptions) -> LogStream: ...
    async def stats(self, ref: str, opts: StatsOptions
                    ) -> AsyncGenerator[dict[str, Any], None]:
        """StatsResponse objects; an unknown container raises before the first.
        The caller closes the generator when its client goes."""
        ...

    async def top(self, ref: str, ps_args: str | None) -> dict[str, Any]: ...


class ContainerFilesBackend(Protocol):
    async def export(self, ref: str) -> AsyncIterator[bytes]: ...
    async def changes(self, ref: str) -> list[dict[str, Any]]: ...
    async def stat_path(self, ref: str, path: str) -> dict[str, Any]: ...
    async def archive_path(self, ref: str, path: str
                           ) -> tuple[dict[str, Any], AsyncIterator[bytes]]: ...
    async def extract_to_dir(self, ref: str, path: str, chunks: AsyncIterator[bytes],
                             opts: ExtractOptions) -> None: ...
    async def commit(self, opts: CommitOptions) -> str:
        """The new image's id."""
        ...


class ContainerBackend(ContainerStateBackend, ContainerAttachBackend, ContainerMonitorBackend,
                       ContainerFilesBackend, Protocol):
    """Everything `/containers/...` and `/commit` need."""
