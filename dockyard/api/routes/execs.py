"""Exec routes (moby's exec router): parse, call the exec backend, shape."""

from __future__ import annotations

from dockyard.api.identity import DEFAULT_HEADERS
from dockyard.api.params import resize_size
from dockyard.api.server import (
    HijackedStream,
    HijackResponse,
    Request,
    Response,
    Router,
    empty_response,
    json_response,
)
from dockyard.api.streams import MUX, RAW, StreamSink
from dockyard.backend import ExecBackend


class ExecRoutes:
    def __init__(self, backend: ExecBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("POST", "/containers/{id}/exec", self.create)
        r.add("POST", "/exec/{id}/start", self.start)
        r.add("POST", "/exec/{id}/resize", self.resize)
        r.add("GET", "/exec/{id}/json", self.inspect)

    async def create(self, req: Request) -> Response:
        body = await req.json()
        exec_id = await self.backend.create(req.params["id"], body, req.api_version)
        return json_response({"Id": exec_id}, 201)

    async def start(self, req: Request) -> Response:
        opts = self.backend.start_options(await req.json(), req.api_version)
        exec_id = req.params["id"]
        self.backend.check_startable(exec_id)     # 404/409 as HTTP errors, before the hijack
        if opts.detach:
            await self.backend.start_detached(exec_id, opts)
            return empty_response(200)
        tty = opts.tty
        ctype = MUX if not tty and req.api_version >= (1, 42) else RAW

        async def run(stream: HijackedStream) -> None:
            # the start request's tty decides the framing, as in dockerd
            await self.backend.start_attached(exec_id, opts, stream,
                                              StreamSink(stream, multiplexed=not tty))

        # dockerd copies its middleware headers into the hijacked response head
        return HijackResponse(run, ctype, dict(DEFAULT_HEADERS))

    async def resize(self, req: Request) -> Response:
        h, w = resize_size(req)
        await self.backend.resize(req.params["id"], h, w)
        return empty_response(200)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.backend.inspect(req.params["id"]))
