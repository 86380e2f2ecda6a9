"""The system area: version, info, events; and the bundle of all backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockyard.backend.build import BuildBackend
from dockyard.backend.containers import ContainerBackend
from dockyard.backend.execs import ExecBackend
from dockyard.backend.images import ImageBackend
from dockyard.backend.networks import NetworkBackend
from dockyard.backend.swarm import SwarmBackend
from dockyard.backend.volumes import VolumeBackend


@dataclass(frozen=True)
class EventsOptions:
    since_ns: int | None = None
    until_ns: int | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class DiskUsageOptions:
    containers: bool = True
    images: bool = True
    volumes: bool = True
    build_cache: bool = True


class SystemBackend(Protocol):
    def version(self) -> dict[str, Any]:
        """`GET /version` (SystemVersion)."""
        ...

    def info(self) -> dict[str, Any]:
        """`GET /info` (SystemInfo)."""
        ...

    def events(self, opts: EventsOptions) -> AsyncIterator[dict[str, Any]]:
        """EventMessage objects: past ones from `since_ns`, then live ones until
        `until_ns` or the client goes.  Bad filters raise before it returns."""
        ...

    async def disk_usage(self, opts: DiskUsageOptions) -> dict[str, Any]:
        """`GET /system/df`: LayersSize, Images, Containers, Volumes, BuildCache
        (the parts not asked for are left out)."""
        ...


@dataclass(frozen=True)
class Backends:
    """What the API layer is given: one backend per area."""

    system: SystemBackend
    images: ImageBackend
    containers: ContainerBackend
    execs: ExecBackend
    networks: NetworkBackend
    volumes: VolumeBackend
    build: BuildBackend
    swarm: SwarmBackend
