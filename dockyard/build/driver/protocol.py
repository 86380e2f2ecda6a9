"""What the builder needs from the engine, and nothing more.

The engine implements `StepEngine` with its own services: the image store
(lookups, commits, tags), the container services (create, start, wait,
remove: a RUN step is an ordinary container, with the engine's defaults
for security and resources), and writable layers over an image for COPY,
ADD and WORKDIR.  The builder never touches engine internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Output = Callable[[int, bytes], None]       # (stream, data) of a step's process


@dataclass(frozen=True)
class ImageInfo:
    id: str
    config: dict[str, Any]                  # the whole image config (config, history, rootfs)
    parent: str = ""


@dataclass(frozen=True)
class StepCommit:
    """A new image's own parts: its Config, the step's container config
    (what the cache compares; its Cmd is the history's created_by), author."""

    config: dict[str, Any]
    container_config: dict[str, Any]
    author: str = ""
    container: str = ""
    base: dict[str, Any] = field(default_factory=dict)   # os/architecture on FROM scratch


@dataclass
class Layer:
    """A writable layer over an image: `root` is the merged tree to write in."""

    image_id: str
    root: Path
    handle: Any = None


class StepEngine(Protocol):
    def image(self, ref: str) -> ImageInfo:
        """A local image by name or id; NotFound with Docker's text."""
        ...

    def find_image(self, image_id: str) -> ImageInfo | None: ...

    async def ensure_base_image(self, name: str, platform: str, pull: bool,
                                auth: dict[str, dict[str, Any]], out: Callable[[dict[str, Any]], None]
                                ) -> ImageInfo:
        """The base image of a FROM line, pulled when missing (or always with
        `pull`); NotFound with Docker's text when it cannot be had."""
        ...

    def lower_dirs(self, image_id: str) -> list[str]: ...

    async def run_step(self, body: dict[str, Any], host_config: dict[str, Any],
                       out: Output, created: Callable[[str], None]) -> tuple[str, int]:
        """Create a container from `body` and run it to its end, its output to
        `out`; (container id, exit code).  `created` is told the id first."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def commit_container(self, container_id: str, parent: str, step: StepCommit) -> str:
        """The container's changes as a layer on `parent`; the new image id."""
        ...

    async def open_layer(self, image_id: str) -> Layer: ...

    async def commit_layer(self, layer: Layer, step: StepCommit) -> str: ...

    async def release_layer(self, layer: Layer) -> None: ...

    async def commit_metadata(self, parent: str, step: StepCommit) -> str:
        """A child image with no new layer (an empty_layer history entry)."""
        ...

    async def add_image_config(self, config: dict[str, Any], parent: str) -> str:
        """An image from a config whose layers are all present."""
        ...

    async def tag(self, image_id: str, reference: str) -> str: ...
