"""The seam between `api/` and the engine: one protocol per API area.

Route handlers in `api/` see only these protocols, the small option
dataclasses beside them and `dockyard.errors`; what they get back is
Docker-shaped (the JSON objects of the Engine API, or byte and record
streams).  The engine in `dockyard.engine` implements them for one machine;
another backend (pods on a cluster, say) can implement the same protocols
without touching `api/`, answering what it cannot do with
`NotImplementedByEngine` (501).

Like moby's routers, each area's backend is built from small role
protocols (state, attach, files, monitoring) so a partial backend can say
precisely which roles it fills.

Nothing here does I/O.
"""

from dockyard.backend.build import BuildBackend, BuildOptions, BuildPruneOptions
from dockyard.backend.containers import (
    AttachOptions,
    AttachPlan,
    CommitOptions,
    ContainerAttachBackend,
    ContainerBackend,
    ContainerFilesBackend,
    ContainerMonitorBackend,
    ContainerStateBackend,
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
from dockyard.backend.execs import ExecBackend, ExecStartOptions
from dockyard.backend.images import (
    ImageBackend,
    ImageListOptions,
    ImportOptions,
    PullOptions,
    PushOptions,
)
from dockyard.backend.networks import NetworkBackend, NetworkCreateResult
from dockyard.backend.streams import STDERR, STDOUT, OutputSink, StdinSource
from dockyard.backend.swarm import SwarmBackend
from dockyard.backend.system import Backends, DiskUsageOptions, EventsOptions, SystemBackend
from dockyard.backend.volumes import VolumeBackend

__all__ = [
    "STDERR",
    "STDOUT",
    "AttachOptions",
    "AttachPlan",
    "Backends",
    "BuildBackend",
    "BuildOptions",
    "BuildPruneOptions",
    "CommitOptions",
    "ContainerAttachBackend",
    "ContainerBackend",
    "ContainerFilesBackend",
    "ContainerMonitorBackend",
    "ContainerStateBackend",
    "CreateResult",
    "DiskUsageOptions",
    "EventsOptions",
    "ExecBackend",
    "ExecStartOptions",
    "ExtractOptions",
    "ImageBackend",
    "ImageListOptions",
    "ImportOptions",
    "InspectOptions",
    "ListOptions",
    "LogStream",
    "LogsOptions",
    "NetworkBackend",
    "NetworkCreateResult",
    "OutputSink",
    "PullOptions",
    "PushOptions",
    "RemoveOptions",
    "StatsOptions",
    "StdinSource",
    "StopOptions",
    "SwarmBackend",
    "SystemBackend",
    "VolumeBackend",
    "WaitResult",
]
