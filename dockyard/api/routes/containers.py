"""Container routes: state, wait, attach (hijacked and websocket), logs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.api.params import resize_size
from dockyard.api.server import (
    HijackedStream,
    HijackResponse,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketResponse,
    empty_response,
    json_response,
    stream_response,
)
from dockyard.api.streams import MUX, RAW, StreamSink, frames, json_line
from dockyard.backend import (
    AttachOptions,
    ContainerBackend,
    InspectOptions,
    ListOptions,
    LogsOptions,
    RemoveOptions,
    StopOptions,
)
from dockyard.errors import InvalidParameter


def _stop_options(req: Request) -> StopOptions:
    return StopOptions(timeout=req.query_int("t"), signal=req.query_get("signal"))


class ContainerRoutes:
    def __init__(self, backend: ContainerBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/containers/json", self.list_containers)
        r.add("POST", "/containers/create", self.create)
        r.add("POST", "/containers/prune", self.prune)
        r.add("GET", "/containers/{id}/json", self.inspect)
        r.add("POST", "/containers/{id}/start", self.start)
        r.add("POST", "/containers/{id}/stop", self.stop)
        r.add("POST", "/containers/{id}/restart", self.restart)
        r.add("POST", "/containers/{id}/kill", self.kill)
        r.add("POST", "/containers/{id}/pause", self.pause)
        r.add("POST", "/containers/{id}/unpause", self.unpause)
        r.add("POST", "/containers/{id}/rename", self.rename)
        r.add("POST", "/containers/{id}/wait", self.wait)
        r.add("POST", "/containers/{id}/resize", self.resize)
        r.add("POST", "/containers/{id}/attach", self.attach)
        r.add("GET", "/containers/{id}/logs", self.logs)
        r.add("DELETE", "/containers/{id}", self.remove)
        # `docker rm --link linker/alias`: a link's name has a slash
        r.add("DELETE", "/containers/{parent}/{alias}", self.remove)
        r.add("GET", "/containers/{id}/attach/ws", self.attach_ws)

    # ------------------------------------------------------------ state
    async def list_containers(self, req: Request) -> Response:
        opts = ListOptions(all=req.query_bool("all"), limit=req.query_int("limit"),
                           size=req.query_bool("size"), filters=req.filters(),
                           api_version=req.api_version)
        return json_response(self.backend.list_containers(opts))

    async def create(self, req: Request) -> Response:
        ctype = req.headers.get("content-type", "")
        body = await req.json()
        if body is not None and ctype and not ctype.startswith("application/json"):
            raise InvalidParameter(f"unsupported Content-Type header ({ctype}): must be "
                                   "'application/json'")
        res = await self.backend.create(body, req.query_get("name"), req.query_get("platform"))
        return json_response({"Id": res.id, "Warnings": res.warnings or []}, 201)

    async def inspect(self, req: Request) -> Response:
        opts = InspectOptions(size=req.query_bool("size"), api_version=req.api_version)
        return json_response(self.backend.inspect(req.params["id"], opts))

    async def start(self, req: Request) -> Response:
        await self.backend.start(req.params["id"])
        return empty_response(204)

    async def stop(self, req: Request) -> Response:
        await self.backend.stop(req.params["id"], _stop_options(req))
        return empty_response(204)

    async def restart(self, req: Request) -> Response:
        await self.backend.restart(req.params["id"], _stop_options(req))
        return empty_response(204)

    async def kill(self, req: Request) -> Response:
        await self.backend.kill(req.params["id"], req.query_get("signal"))
        return empty_response(204)

    async def pause(self, req: Request) -> Response:
        await self.backend.pause(req.params["id"])
        return empty_response(204)

    async def unpause(self, req: Request) -> Response:
        await self.backend.unpause(req.params["id"])
        return empty_response(204)

    async def rename(self, req: Request) -> Response:
        await self.backend.rename(req.params["id"], req.query_get("name") or "")
        return empty_response(204)

    async def remove(self, req: Request) -> Response:
        opts = RemoveOptions(force=req.query_bool("force"), volumes=req.query_bool("v"),
                             link=req.query_bool("link"))
        ref = req.params.get("id") or f"{req.params['parent']}/{req.params['alias']}"
        await self.backend.remove(ref, opts)
        return empty_response(204)

    async def prune(self, req: Request) -> Response:
        return json_response(await self.backend.prune(req.filters()))

    async def wait(self, req: Request) -> Response:
        done = self.backend.wait(req.params["id"], req.query_get("condition") or "not-running")

        async def gen() -> AsyncIterator[bytes]:
            res = await done
            # dockerd reports a failed start through the start call, not here
            yield json_line({"StatusCode": res.status_code, "Error": None})

        # The header goes out at once: `docker run` waits for it before start.
        return stream_response(gen(), "application/json")

    # ------------------------------------------------------------ attach
    async def resize(self, req: Request) -> Response:
        h, w = resize_size(req)
        await self.backend.resize(req.params["id"], h, w)
        return empty_response(200)

    def _attach_options(self, req: Request, all_streams: bool = False) -> AttachOptions:
        return AttachOptions(
            stdin=all_streams or req.query_bool("stdin"),
            stdout=all_streams or req.query_bool("stdout"),
            stderr=all_streams or req.query_bool("stderr"),
            stream=req.query_bool("stream"), logs=req.query_bool("logs"),
            detach_keys=req.query_get("detachKeys"))

    async def attach(self, req: Request) -> Response:
        plan = self.backend.attach(req.params["id"], self._attach_options(req))
        multiplexed = not plan.tty
        ctype = MUX if multiplexed and req.api_version >= (1, 42) else RAW

        async def run(stream: HijackedStream) -> None:
            await plan.run(stream, StreamSink(stream, multiplexed))

        return HijackResponse(run, ctype)

    async def attach_ws(self, req: Request) -> Response:
        """Attach over a websocket: raw stdout/stderr (never multiplexed), binary
        messages from API 1.28, text before; stdin from the client's messages."""
        # before API 1.42 the websocket always carried every stream
        plan = self.backend.attach(req.params["id"],
                                   self._attach_options(req, req.api_version < (1, 42)))
        binary = req.api_version >= (1, 28)

        async def run(ws: WebSocket) -> None:
            await plan.run(_WsStdin(ws), _WsSink(ws, binary))

        return WebSocketResponse(run)

    # ------------------------------------------------------------ logs
    async def logs(self, req: Request) -> Response:
        opts = LogsOptions(
            stdout=req.query_bool("stdout"), stderr=req.query_bool("stderr"),
            since=req.query_get("since") or "", until=req.query_get("until") or "",
            tail=req.query_get("tail") or "all", timestamps=req.query_bool("timestamps"),
            follow=req.query_bool("follow"), details=req.query_bool("details"))
        stream = self.backend.logs(req.params["id"], opts)

        async def gen() -> AsyncIterator[bytes]:
            async for batch in stream.batches:
                if stream.tty:
                    yield b"".join(data for _, data in batch)
                else:
                    yield frames(batch)

        return stream_response(gen(), RAW if stream.tty else MUX)


class _WsSink:
    """Each write becomes one message, sent at the next drain."""

    def __init__(self, ws: WebSocket, binary: bool) -> None:
        self._ws = ws
        self._binary = binary
        self._queued: list[bytes] = []

    def write(self, stream: int, data: bytes) -> None:
        if data:
            self._queued.append(data)

    async def drain(self) -> None:
        while self._queued:
            await self._ws.send(self._queued.pop(0), self._binary)


class _WsStdin:
    """Client messages in, payload bytes out; the websocket's end is the end of stdin."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    async def read(self, n: int = 65536) -> bytes:
        while True:
            data = await self._ws.receive()
            if data is None:
                return b""
            if data:
                return data
