"""`ContainerBackendService`: the containers backend, one call to one service.

Each method hands the request to the service that owns it; nothing is
decided here.  It exists so the API layer sees one Docker-shaped surface
while the engine keeps its services apart.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

from dockyard.backend import (
    AttachOptions,
    AttachPlan,
    CommitOptions,
    CreateResult,
    ExtractOptions,
    InspectOptions,
    ListOptions,
    LogsOptions,
    LogStream,
    RemoveOptions,
    StatsOptions,
    StopOptions,
    WaitResult,
)
from dockyard.engine.containers.attach import ContainerAttach
from dockyard.engine.containers.create import ContainerCreator
from dockyard.engine.containers.lifecycle import Lifecycle
from dockyard.engine.containers.operate import ContainerOperations
from dockyard.engine.containers.removal import ContainerRemover
from dockyard.engine.containers.stats import StatsService
from dockyard.engine.containers.views import ContainerViews
from dockyard.engine.fs.service import ContainerFiles
from dockyard.engine.logs.service import LogService


class ContainerBackendService:
    def __init__(self, creator: ContainerCreator, views: ContainerViews, lifecycle: Lifecycle,
                 remover: ContainerRemover, attach: ContainerAttach, logs: LogService,
                 stats: StatsService, operations: ContainerOperations, files: ContainerFiles
                 ) -> None:
        self._creator = creator
        self._views = views
        self._lifecycle = lifecycle
        self._remover = remover
        self._attach = attach
        self._logs = logs
        self._stats = stats
        self._operations = operations
        self._files = files

    # ------------------------------------------------------------ state
    async def create(self, body: Any, name: str | None, platform: str | None
                     ) -> CreateResult:
        return await self._creator.create(body, name, platform)

    def list_containers(self, opts: ListOptions) -> list[dict[str, Any]]:
        return self._views.list_containers(opts)

    def inspect(self, ref: str, opts: InspectOptions) -> dict[str, Any]:
        return self._views.inspect(ref, opts)

    async def start(self, ref: str) -> None:
        await self._lifecycle.start(ref)

    async def stop(self, ref: str, opts: StopOptions) -> None:
        await self._lifecycle.stop(ref, opts)

    async def restart(self, ref: str, opts: StopOptions) -> None:
        await self._lifecycle.restart(ref, opts)

    async def kill(self, ref: str, signal: str | None) -> None:
        await self._lifecycle.kill(ref, signal)

    async def pause(self, ref: str) -> None:
        await self._lifecycle.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self._lifecycle.unpause(ref)

    async def rename(self, ref: str, new_name: str) -> None:
        await self._lifecycle.rename(ref, new_name)

    async def remove(self, ref: str, opts: RemoveOptions) -> None:
        await self._lifecycle.remove(ref, opts)

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        return await self._remover.prune(filters)

    async def update(self, ref: str, body: Any, api_version: tuple[int, int]) -> list[str]:
        return await self._operations.update(ref, body, api_version)

    def wait(self, ref: str, condition: str) -> Awaitable[WaitResult]:
        return self._lifecycle.wait(ref, condition)

    # ------------------------------------------------------------ attach
    def attach(self, ref: str, opts: AttachOptions) -> AttachPlan:
        return self._attach.plan(ref, opts)

    async def resize(self, ref: str, height: int, width: int) -> None:
        await self._attach.resize(ref, height, width)

    # ------------------------------------------------------------ monitoring
    def logs(self, ref: str, opts: LogsOptions) -> LogStream:
        return self._logs.logs(ref, opts)

    async def stats(self, ref: str, opts: StatsOptions
                    ) -> AsyncGenerator[dict[str, Any], None]:
        return await self._stats.stats(ref, opts)

    async def top(self, ref: str, ps_args: str | None) -> dict[str, Any]:
        return await self._operations.top(ref, ps_args)

    # ------------------------------------------------------------ files
    async def export(self, ref: str) -> AsyncIterator[bytes]:
        return await self._files.export(ref)

    async def changes(self, ref: str) -> list[dict[str, Any]]:
        return await self._files.changes(ref)

    async def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        return await self._files.stat_path(ref, path)

    async def archive_path(self, ref: str, path: str
                           ) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        return await self._files.archive_path(ref, path)

    async def extract_to_dir(self, ref: str, path: str, chunks: AsyncIterator[bytes],
                             opts: ExtractOptions) -> None:
        await self._files.extract_to_dir(ref, path, chunks, copy_uid_gid=opts.copy_uid_gid,
                                         no_overwrite_dir_non_dir=opts.no_overwrite_dir_non_dir)

    async def commit(self, opts: CommitOptions) -> str:
        return await self._files.commit(opts)
