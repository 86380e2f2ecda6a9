"""Image routes (moby's image router): parse, call the images backend, shape.

Import, save and pull run their stream up to the first item before
answering, so failures that happen before any output (an unknown name, a
bad --change, a layer that is no tar, an image that cannot be pulled) get a
real HTTP error status instead of a 200 with an error record; the request
body is consumed by then, as the streaming response requires.  Load is
answered as dockerd answers it: always 200, its errors the last record of
the progress stream.

A client that leaves while its import, load or commit is still working
cancels it (`cancel_on_disconnect`): the engine stops and leaves nothing
behind, since nobody would learn what was made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from dockyard.api.server import (
    Request,
    Response,
    Router,
    cancel_on_disconnect,
    empty_response,
    json_response,
    json_stream_response,
    stream_response,
)
from dockyard.backend import (
    ImageBackend,
    ImageListOptions,
    ImportOptions,
    PullOptions,
    PushOptions,
)
from dockyard.errors import DockyardError, InvalidParameter, NotImplementedByEngine

T = TypeVar("T")


async def primed(it: AsyncIterator[T]) -> AsyncIterator[T]:
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


async def errors_as_records(it: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """The stream, its error (if any) as Docker's last error record."""
    try:
        async for item in it:
            yield item
    except DockyardError as e:
        yield {"errorDetail": {"message": e.message}, "error": e.message}


def _legacy_summary(item: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    if version < (1, 44):
        item["VirtualSize"] = item["Size"]
    return item


class ImageRoutes:
    def __init__(self, backend: ImageBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/images/json", self.list_images)
        r.add("POST", "/images/load", self.load)
        r.add("GET", "/images/get", self.save_many)
        r.add("POST", "/images/create", self.create)
        r.add("POST", "/images/prune", self.prune)
        r.add("GET", "/images/search", self.search)
        r.add("GET", "/images/{name:.+}/get", self.save_one)
        r.add("GET", "/images/{name:.+}/json", self.inspect)
        r.add("GET", "/images/{name:.+}/history", self.history)
        r.add("POST", "/images/{name:.+}/tag", self.tag)
        r.add("POST", "/images/{name:.+}/push", self.push)
        r.add("DELETE", "/images/{name:.+}", self.remove)

    async def list_images(self, req: Request) -> Response:
        items = await self.backend.list_images(ImageListOptions(
            all=req.query_bool("all"), filters=req.filters(), digests=req.query_bool("digests")))
        return json_response([_legacy_summary(i, req.api_version) for i in items])

    async def inspect(self, req: Request) -> Response:
        out = self.backend.inspect(req.params["name"])
        if req.api_version < (1, 44):
            out["VirtualSize"] = out["Size"]
        return json_response(out)

    async def history(self, req: Request) -> Response:
        return json_response(await self.backend.history(req.params["name"]))

    async def tag(self, req: Request) -> Response:
        await self.backend.tag(req.params["name"], req.query_get("repo") or "",
                               req.query_get("tag") or "")
        return empty_response(201)

    async def remove(self, req: Request) -> Response:
        records = await self.backend.remove(req.params["name"], force=req.query_bool("force"),
                                            noprune=req.query_bool("noprune"))
        return json_response(records)

    async def prune(self, req: Request) -> Response:
        return json_response(await self.backend.prune(req.filters()))

    async def load(self, req: Request) -> Response:
        quiet = req.query_bool("quiet", True)
        items = errors_as_records(self.backend.load(req.body_chunks(), quiet))
        return json_stream_response(await cancel_on_disconnect(req, primed(items)))

    async def _save(self, names: list[str]) -> Response:
        return stream_response(await primed(self.backend.save(names)), "application/x-tar")

    async def save_many(self, req: Request) -> Response:
        return await self._save(req.query_all("names"))

    async def save_one(self, req: Request) -> Response:
        return await self._save([req.params["name"]])

    async def create(self, req: Request) -> Response:
        src = req.query_get("fromSrc")
        if src is not None:
            if src != "-":
                raise NotImplementedByEngine(
                    "importing from a URL is not supported; send the tarball as the body "
                    "(fromSrc=-)")
            opts = ImportOptions(
                repo=req.query_get("repo") or "", tag=req.query_get("tag") or "",
                message=req.query_get("message") or "",
                changes=[c for c in req.query_all("changes") if c],
                platform=req.query_get("platform") or "")
            it = await cancel_on_disconnect(
                req, primed(self.backend.import_image(req.body_chunks(), opts)))
            return json_stream_response(it)
        image = req.query_get("fromImage")
        if not image:
            raise InvalidParameter("either fromSrc or fromImage must be set")
        opts_pull = PullOptions(image=image, tag=req.query_get("tag") or "",
                                platform=(req.query_get("platform") or "")
                                if req.api_version >= (1, 32) else "",
                                auth=req.headers.get("x-registry-auth", ""))
        # a client that leaves stops the pull (the engine undoes what it staged)
        it = await cancel_on_disconnect(req, primed(self.backend.pull(opts_pull)))
        return json_stream_response(it)

    async def push(self, req: Request) -> Response:
        if req.query_get("platform"):
            raise InvalidParameter("pushing a single platform of an image is not supported "
                                   "(the image store keeps one platform per image): push "
                                   "without --platform")
        auth = req.headers.get("x-registry-auth", "")
        body = None
        if not auth:
            # the old way: credentials as the body; clients without any send
            # "{}" (the docker CLI, docker-py), and no body at all is refused
            try:
                body = await req.json()
            except InvalidParameter as e:
                raise InvalidParameter(
                    f"bad parameters and missing X-Registry-Auth: {e.message}") from None
            if body is None:
                raise InvalidParameter("bad parameters and missing X-Registry-Auth: invalid "
                                       "X-Registry-Auth header: EOF")
            if not isinstance(body, dict):
                raise InvalidParameter("bad parameters and missing X-Registry-Auth: json: "
                                       "cannot unmarshal into Go value of type "
                                       "registry.AuthConfig")
        opts = PushOptions(name=req.params["name"], tag=req.query_get("tag") or "",
                           auth=auth, auth_body=body)
        it = await cancel_on_disconnect(req, primed(self.backend.push(opts)))
        return json_stream_response(it)

    async def search(self, req: Request) -> Response:
        term = req.query_get("term") or ""
        return json_response(await self.backend.search(term, req.query_int("limit")))
