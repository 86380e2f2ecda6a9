"""Image routes (moby daemon/server/router/image): parse, call ImageService, shape.

Load, import and save run their service iterator up to the first item before
answering, so failures that happen before any output (a bad archive, an
unknown name, a bad --change) get a real HTTP error status instead of a 200
with an error record; the request body is consumed by then, as the streaming
response requires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from dockyard.api.server import (
    Request,
    Response,
    Router,
    empty_response,
    json_response,
    json_stream_response,
    stream_response,
)
from dockyard.errors import InvalidParameter, NotFound, NotImplementedByEngine
from dockyard.images.reference import parse_normalized_named

T = TypeVar("T")


async def _primed(it: AsyncIterator[T]) -> AsyncIterator[T]:
    """Run `it` to its first item now; return an iterator that replays it."""
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        first = None

    async def gen() -> AsyncIterator[T]:
        if first is not None:
            yield first
            async for x in it:
                yield x

    return gen()


def _legacy_summary(item: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    if version < (1, 44):
        item["VirtualSize"] = item["Size"]
    return item


async def list_images(req: Request) -> Response:
    items = await req.engine.images.list(
        all=req.query_bool("all"), filters=req.filters(), digests=req.query_bool("digests"))
    return json_response([_legacy_summary(i, req.api_version) for i in items])


async def inspect_image(req: Request) -> Response:
    out = req.engine.images.inspect(req.params["name"])
    if req.api_version < (1, 44):
        out["VirtualSize"] = out["Size"]
    if req.api_version < (1, 45):
        out["Container"] = ""
        out["ContainerConfig"] = None
    return json_response(out)


async def image_history(req: Request) -> Response:
    return json_response(await req.engine.images.history(req.params["name"]))


async def tag_image(req: Request) -> Response:
    repo = req.query_get("repo") or ""
    await req.engine.images.tag(req.params["name"], repo, req.query_get("tag") or "")
    return empty_response(201)


async def delete_image(req: Request) -> Response:
    records = await req.engine.images.remove(
        req.params["name"], force=req.query_bool("force"), noprune=req.query_bool("noprune"))
    return json_response(records)


async def prune_images(req: Request) -> Response:
    return json_response(await req.engine.images.prune(req.filters()))


async def load_images(req: Request) -> Response:
    quiet = req.query_bool("quiet", True)
    it = await _primed(req.engine.images.load(req.body_chunks(), quiet))
    return json_stream_response(it)


async def _save(req: Request, names: list[str]) -> Response:
    it = await _primed(req.engine.images.save(names))
    return stream_response(it, "application/x-tar")


async def save_images(req: Request) -> Response:
    return await _save(req, req.query_all("names"))


async def save_image(req: Request) -> Response:
    return await _save(req, [req.params["name"]])


async def create_image(req: Request) -> Response:
    src = req.query_get("fromSrc")
    if src is not None:
        if src != "-":
            raise NotImplementedByEngine(
                "importing from a URL is not supported; send the tarball as the body "
                "(fromSrc=-)")
        changes = [c for c in req.query_all("changes") if c]
        it = await _primed(req.engine.images.import_image(
            req.body_chunks(), repo=req.query_get("repo") or "", tag=req.query_get("tag") or "",
            message=req.query_get("message") or "", changes=changes,
            platform=req.query_get("platform") or ""))
        return json_stream_response(it)
    image = req.query_get("fromImage")
    if not image:
        raise InvalidParameter("either fromSrc or fromImage must be set")
    return await _pull(req, image, req.query_get("tag") or "")


async def _pull(req: Request, image: str, tag: str) -> Response:
    """No registry client yet: succeed only for images already present.

    A missing image answers 404 with the text dockerd uses for a repository
    the registry refuses, so `docker run missing` prints a clear message and
    docker-py raises ImageNotFound.
    """
    ref = parse_normalized_named(image)
    if tag:
        ref = parse_normalized_named(f"{ref.name}@{tag}" if ":" in tag else f"{ref.name}:{tag}")
    ref = ref.with_default_tag()
    try:
        local = req.engine.images.get(str(ref))
    except NotFound:
        raise NotFound(
            f"pull access denied for {ref.familiar_name}, repository does not exist or may "
            "require 'docker login': dockyard cannot pull images yet (no registry client); "
            "use 'docker load' or 'docker import'") from None
    platform = req.query_get("platform") or ""
    if platform:
        # `docker run --platform` pulls after a platform mismatch; answering
        # "up to date" would only make the CLI repeat the mismatch after
        # claiming a pull, so say why no other variant can come.
        from dockyard.engine.containers import check_platform

        try:
            check_platform(platform, req.engine.images.image_config(local.id), ref.familiar())
        except NotFound as e:
            raise NotFound(f"{e.message}; dockyard cannot pull other platforms' variants "
                           "(no registry client): use 'docker load' or 'docker import "
                           f"--platform {platform}'") from None
    shown = ref.tag or ref.digest

    async def gen() -> AsyncIterator[dict[str, Any]]:
        yield {"status": f"Pulling from {ref.path}", "id": shown}
        yield {"status": f"Status: Image is up to date for {ref.familiar()}"}

    return json_stream_response(gen())


async def search_images(req: Request) -> Response:
    raise NotImplementedByEngine("image search is not supported: dockyard has no registry access")


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/load", load_images)
    router.add("GET", "/images/get", save_images)
    router.add("POST", "/images/create", create_image)
    router.add("POST", "/images/prune", prune_images)
    router.add("GET", "/images/search", search_images)
    router.add("GET", "/images/{name:.+}/get", save_image)
    router.add("GET", "/images/{name:.+}/json", inspect_image)
    router.add("GET", "/images/{name:.+}/history", image_history)
    router.add("POST", "/images/{name:.+}/tag", tag_image)
    router.add("DELETE", "/images/{name:.+}", delete_image)
