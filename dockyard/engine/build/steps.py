"""`EngineSteps`: the builder's `StepEngine` on this engine's own services.

A RUN step is an ordinary container: created by the container creator
(Docker's validation and defaults: seccomp, capabilities, the build's
resource limits, network and extra hosts), attached before it starts so
no output is lost, started and waited for by the lifecycle, committed as
`docker commit` commits (the upper dir as a layer, mount points left out)
and removed by the remover.  COPY, ADD and WORKDIR write into a writable
overlay over the current image, mounted under the builder's own
directory and committed from its upper dir.  `ensure_base_image` is the
one place a missing base image is pulled: it goes through the images
backend's pull, which says clearly when an image cannot be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.backend import AttachOptions, PullOptions, RemoveOptions
from dockyard.build.driver.protocol import ImageInfo, Layer, Output, StepCommit
from dockyard.engine.containers.attach import ContainerAttach
from dockyard.engine.containers.create import ContainerCreator, check_platform
from dockyard.engine.containers.lifecycle import Lifecycle
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.fs.commit import commit_tar
from dockyard.engine.fs.diff import Skips, mount_points
from dockyard.engine.images import ImageBackendService
from dockyard.errors import NotFound
from dockyard.images.reference import parse_normalized_named
from dockyard.images.service import ImageService
from dockyard.util.fstree import remove_quietly
from dockyard.util.mount import mount_overlay, umount


class _NoStdin:
    async def read(self, n: int = 65536) -> bytes:
        return b""


class _Sink:
    def __init__(self, out: Output) -> None:
        self.out = out

    def write(self, stream: int, data: bytes) -> None:
        self.out(stream, data)

    async def drain(self) -> None:
        return None


def _info(rec: Any) -> ImageInfo:
    return ImageInfo(id=rec.id, config=rec.config, parent=rec.parent)


class EngineSteps:
    def __init__(self, images: ImageService, image_backend: ImageBackendService,
                 store: ContainerStore, creator: ContainerCreator, lifecycle: Lifecycle,
                 attach: ContainerAttach, layers_dir: Path) -> None:
        self.images = images
        self.image_backend = image_backend
        self.store = store
        self.creator = creator
        self.lifecycle = lifecycle
        self.attach = attach
        self.layers_dir = layers_dir

    # ------------------------------------------------------------ images
    def image(self, ref: str) -> ImageInfo:
        return _info(self.images.get(ref))

    def find_image(self, image_id: str) -> ImageInfo | None:
        rec = self.images.store.images.get(image_id)
        return _info(rec) if rec is not None and not rec.hidden else None

    def lower_dirs(self, image_id: str) -> list[str]:
        return self.images.lower_dirs(image_id)

    async def ensure_base_image(self, name: str, platform: str, pull: bool,
                                auth: dict[str, dict[str, Any]],
                                out: Callable[[dict[str, Any]], None]) -> ImageInfo:
        """The base image of a FROM (or COPY --from) line.  A local image is
        used as it is unless `pull`; otherwise the images backend pulls it,
        its progress going to the build's output.  With no registry client
        that pull answers Docker's "pull access denied ..." for a missing
        image, which ends the build."""
        ref = parse_normalized_named(name).with_default_tag()
        local: ImageInfo | None = None
        with contextlib.suppress(NotFound):
            local = self.image(str(ref))
        if local is None or pull:
            async for record in self.image_backend.pull(
                    PullOptions(image=str(ref), platform=platform)):
                out(record)
            local = self.image(str(ref))
        if platform:
            check_platform(platform, local.config, ref.familiar())
        return local

    async def add_image_config(self, config: dict[str, Any], parent: str) -> str:
        return await self.images.add_config(config, parent)

    async def tag(self, image_id: str, reference: str) -> str:
        return await self.images.tag(image_id, reference)

    # ------------------------------------------------------------ containers
    async def run_step(self, body: dict[str, Any], host_config: dict[str, Any], out: Output,
                       created: Callable[[str], None]) -> tuple[str, int]:
        res = await self.creator.create({**body, "HostConfig": host_config}, None, None)
        created(res.id)
        plan = self.attach.plan(res.id, AttachOptions(stdout=True, stderr=True, stream=True))
        session = asyncio.ensure_future(plan.run(_NoStdin(), _Sink(out)))
        try:
            for _ in range(3):           # let it register before the start
                await asyncio.sleep(0)
            await self.lifecycle.start(res.id)
            result = await self.lifecycle.wait(res.id, "not-running")
            await asyncio.wait_for(asyncio.shield(session), 30)
        finally:
            if not session.done():
                session.cancel()
                with contextlib.suppress(BaseException):
                    await session
        return res.id, result.status_code

    async def remove_container(self, container_id: str) -> None:
        await self.lifecycle.remove(container_id, RemoveOptions(force=True, volumes=True))

    def _child(self, step: StepCommit, container: str = "") -> dict[str, Any]:
        return {"config": step.config, "container": container or step.container,
                "container_config": step.container_config, "author": step.author,
                "created_by": " ".join(step.container_config.get("Cmd") or []),
                "base": step.base}

    async def commit_container(self, container_id: str, parent: str, step: StepCommit) -> str:
        c = self.store.get(container_id)
        upper = self.store.dir(c) / "upper"
        skips = Skips.of(mount_points(c.config, c.host_config))
        lowers = self.images.lower_dirs(c.image_id)
        return await self.images.commit_layer(parent, commit_tar(upper, lowers, skips),
                                              self._child(step, container_id))

    async def commit_metadata(self, parent: str, step: StepCommit) -> str:
        return await self.images.commit_layer(parent, None, self._child(step))

    # ------------------------------------------------------------ writable layers
    async def open_layer(self, image_id: str) -> Layer:
        where = self.layers_dir / secrets.token_hex(8)
        lowers = self.images.lower_dirs(image_id) if image_id else []

        def make() -> Path:
            where.mkdir(mode=0o700, parents=True)
            for sub in ("upper", "work", "merged"):
                (where / sub).mkdir(mode=0o755)
            if not lowers:
                return where / "upper"
            mount_overlay(lowers, str(where / "upper"), str(where / "work"),
                          str(where / "merged"))
            return where / "merged"

        try:
            root = await asyncio.to_thread(make)
        except BaseException:
            await asyncio.to_thread(remove_quietly, where, "build layer", unmount=True)
            raise
        return Layer(image_id=image_id, root=root, handle=(where, lowers))

    async def commit_layer(self, layer: Layer, step: StepCommit) -> str:
        where, lowers = layer.handle
        if lowers:
            await asyncio.to_thread(umount, str(where / "merged"))
        return await self.images.commit_layer(
            layer.image_id, commit_tar(where / "upper", lowers, Skips()), self._child(step))

    async def release_layer(self, layer: Layer) -> None:
        where, _ = layer.handle
        await asyncio.to_thread(remove_quietly, where, "build layer", unmount=True)
