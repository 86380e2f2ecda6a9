"""The build area: `POST /build` and `POST /build/prune`.

The request's query becomes `BuildOptions` (the API layer only decodes it:
JSON values, booleans, numbers); the engine checks the values and answers
with Docker's JSON progress records (`{"stream": ...}`, `{"aux": ...}`,
an error record last when a step fails).  A failure before the first
record (a bad option, an unreadable context, a Dockerfile that does not
parse) is raised when the first record is asked for, so it can still be
an HTTP error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = ""
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    remove: bool = True
    force_remove: bool = False
    quiet: bool = False
    cache_from: list[str] = field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    platform: str = ""
    squash: bool = False
    isolation: str = ""
    remote: str = ""
    session: str = ""
    build_id: str = ""
    version: str = "1"
    outputs: list[dict[str, Any]] = field(default_factory=list)
    auth_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_version: tuple[int, int] = (1, 51)


@dataclass(frozen=True)
class BuildPruneOptions:
    all: bool = False
    filters: dict[str, list[str]] = field(default_factory=dict)
    keep_storage: int = 0


class BuildBackend(Protocol):
    def build(self, opts: BuildOptions, context: AsyncIterator[bytes]
              ) -> AsyncIterator[dict[str, Any]]:
        """The build's progress records; the context is the request body."""
        ...

    async def prune(self, opts: BuildPruneOptions) -> dict[str, Any]:
        """`{"CachesDeleted": [...], "SpaceReclaimed": n}`."""
        ...
