"""`ImageBackendService`: the image store and the registries as the images
backend.

The store itself (`dockyard.images`) knows nothing of the API; this adapts
it to the backend protocol, and turns the API's strings (references, the
platform, the X-Registry-Auth header) into the registry client's values
(`dockyard.images.distribution`), refusing bad ones with Docker's texts
before anything is contacted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from dockyard.backend import ImageListOptions, ImportOptions, PullOptions, PushOptions
from dockyard.engine.containers.create import check_platform
from dockyard.errors import InvalidParameter, NotFound, NotImplementedByEngine
from dockyard.images.distribution.auth import AuthConfig, decode_auth_header
from dockyard.images.distribution.platforms import parse_platform
from dockyard.images.distribution.service import Distribution
from dockyard.images.reference import Reference, parse_normalized_named, validate_tag
from dockyard.images.service import ImageService

_DIGEST_LIKE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def pull_reference(image: str, tag: str) -> Reference:
    """dockerd's postImagesCreate: `fromImage` (a trailing ":" dropped, as
    `pull -a` of old clients sends it) and `tag`, which may be a digest; a
    bare name means every tag."""
    ref = parse_normalized_named(image.removesuffix(":"))
    if tag:
        if _DIGEST_LIKE.match(tag):
            try:
                return parse_normalized_named(f"{ref.name}@{tag}")
            except InvalidParameter:
                pass                    # not a digest after all: it must be a tag
        try:
            validate_tag(tag)
        except InvalidParameter:
            raise InvalidParameter("invalid tag format") from None
        ref = ref.with_tag(tag)
    return ref


class ImageBackendService:
    def __init__(self, images: ImageService, distribution: Distribution) -> None:
        self.images = images
        self.distribution = distribution

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
        ref = pull_reference(opts.image, opts.tag)
        platform = parse_platform(opts.platform) if opts.platform else None
        creds = decode_auth_header(opts.auth)
        async for msg in self.distribution.pull(ref, platform, creds):
            yield msg
        if opts.platform and (ref.tag or ref.digest):
            # a single-platform image is pulled whatever --platform says (as
            # dockerd); say so, as dockerd does
            try:
                check_platform(opts.platform, self.images.image_config(
                    self.images.get(str(ref)).id), ref.familiar())
            except NotFound as e:
                yield {"status": f"WARNING: {e.message}"}

    def push(self, opts: PushOptions) -> AsyncIterator[dict[str, Any]]:
        ref = parse_normalized_named(opts.name)
        if ref.digest:
            raise InvalidParameter("cannot push a digest reference")
        if opts.tag:
            validate_tag(opts.tag)
            ref = ref.with_tag(opts.tag)
        creds = AuthConfig.from_json(opts.auth_body) if opts.auth_body is not None \
            else decode_auth_header(opts.auth)
        return self.distribution.push(ref, creds)

    async def login(self, auth: dict[str, Any]) -> dict[str, Any]:
        return await self.distribution.login(AuthConfig.from_json(auth))

    async def distribution_inspect(self, name: str, auth: str) -> dict[str, Any]:
        if re.fullmatch(r"(sha256:)?[a-f0-9]{64}", name):
            raise NotFound("no manifest found for full image ID")
        ref = parse_normalized_named(name)
        return await self.distribution.inspect(ref, decode_auth_header(auth))

    async def search(self, term: str, limit: int | None) -> list[dict[str, Any]]:
        raise NotImplementedByEngine(
            "image search is not supported: it needs Docker Hub's v1 search API")
