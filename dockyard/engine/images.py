"""`ImageBackendService`: the image store as the images backend, and pull.

The store itself (`dockyard.images`) knows nothing of the API; this adapts
it to the backend protocol.  There is no registry client yet: a pull
succeeds only for an image that is already here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dockyard.backend import ImageListOptions, ImportOptions, PullOptions
from dockyard.engine.containers.create import check_platform
from dockyard.errors import NotFound, NotImplementedByEngine
from dockyard.images.reference import parse_normalized_named
from dockyard.images.service import ImageService


class ImageBackendService:
    def __init__(self, images: ImageService) -> None:
        self.images = images

    async def list_images(self, opts: ImageListOptions) -> list[dict[str, Any]]:
        return await self.images.list_images(all=opts.all, filters=opts.filters, digests=opts.digests)

    def inspect(self, name: str) -> dict[str, Any]:
        return self.images.inspect(name)

    async def history(self, name: str) -> list[dict[str, Any]]:
        return await self.images.history(name)

    async def tag(self, name: str, repo: str, tag: str = "") -> str:
        return await self.images.tag(name, repo, tag)

    async def remove(self, name: str, force: bool = False, noprune: bool = False
                     ) -> list[dict[str, str]]:
        return await self.images.remove(name, force=force, noprune=noprune)

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        return await self.images.prune(filters)

    def load(self, chunks: AsyncIterator[bytes], quiet: bool) -> AsyncIterator[dict[str, Any]]:
        return self.images.load(chunks, quiet)

    def save(self, names: list[str]) -> AsyncIterator[bytes]:
        return self.images.save(names)

    def import_image(self, chunks: AsyncIterator[bytes], opts: ImportOptions
                     ) -> AsyncIterator[dict[str, Any]]:
        return self.images.import_image(chunks, repo=opts.repo, tag=opts.tag,
                                        message=opts.message, changes=list(opts.changes),
                                        platform=opts.platform)

    async def pull(self, opts: PullOptions) -> AsyncIterator[dict[str, Any]]:
        """No registry client yet: succeed only for images already present.

        A missing image answers 404 with the text dockerd uses for a
        repository the registry refuses, so `docker run missing` prints a
        clear message and docker-py raises ImageNotFound.
        """
        ref = parse_normalized_named(opts.image)
        if opts.tag:
            ref = parse_normalized_named(f"{ref.name}@{opts.tag}" if ":" in opts.tag
                                         else f"{ref.name}:{opts.tag}")
        ref = ref.with_default_tag()
        try:
            local = self.images.get(str(ref))
        except NotFound:
            raise NotFound(
                f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                "require 'docker login': dockyard cannot pull images yet (no registry client); "
                "use 'docker load' or 'docker import'") from None
        if opts.platform:
            # `docker run --platform` pulls after a platform mismatch; answering
            # "up to date" would only make the CLI repeat the mismatch after
            # claiming a pull, so say why no other variant can come.
            try:
                check_platform(opts.platform, self.images.image_config(local.id),
                               ref.familiar())
            except NotFound as e:
                raise NotFound(f"{e.message}; dockyard cannot pull other platforms' variants "
                               "(no registry client): use 'docker load' or 'docker import "
                               f"--platform {opts.platform}'") from None
        yield {"status": f"Pulling from {ref.path}", "id": ref.tag or ref.digest}
        yield {"status": f"Status: Image is up to date for {ref.familiar()}"}

    async def search(self, term: str, limit: int | None) -> list[dict[str, Any]]:
        raise NotImplementedByEngine(
            "image search is not supported: dockyard has no registry access")
