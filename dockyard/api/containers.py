"""Container routes: parse, call the engine, shape the answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

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
from dockyard.engine.attach import attach_session, check_attachable, frame, parse_detach_keys
from dockyard.errors import Conflict, InvalidParameter, NotImplementedByEngine

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def _mgr(req: Request) -> Any:
    return req.engine.containers


async def list_containers(req: Request) -> Response:
    from dockyard.engine.listing import list_containers as do_list

    limit = req.query_int("limit")
    out = do_list(_mgr(req), req.query_bool("all"), limit, req.query_bool("size"),
                  req.filters(), req.api_version)
    return json_response(out)


async def create(req: Request) -> Response:
    ctype = req.headers.get("content-type", "")
    body = await req.json()
    if body is not None and ctype and not ctype.startswith("application/json"):
        raise InvalidParameter(f"unsupported Content-Type header ({ctype}): must be "
                               "'application/json'")
    cid, warnings = await _mgr(req).create(body, req.query_get("name"),
                                           req.query_get("platform"))
    return json_response({"Id": cid, "Warnings": warnings or []}, 201)


async def inspect(req: Request) -> Response:
    return json_response(_mgr(req).inspect(req.params["id"], req.query_bool("size"),
                                           req.api_version))


async def start(req: Request) -> Response:
    await _mgr(req).start(req.params["id"])
    return empty_response(204)


def _timeout(req: Request) -> int | None:
    return req.query_int("t")


async def stop(req: Request) -> Response:
    await _mgr(req).stop(req.params["id"], _timeout(req), req.query_get("signal"))
    return empty_response(204)


async def restart(req: Request) -> Response:
    await _mgr(req).restart(req.params["id"], _timeout(req), req.query_get("signal"))
    return empty_response(204)


async def kill(req: Request) -> Response:
    await _mgr(req).kill(req.params["id"], req.query_get("signal"))
    return empty_response(204)


async def pause(req: Request) -> Response:
    await _mgr(req).pause(req.params["id"])
    return empty_response(204)


async def unpause(req: Request) -> Response:
    await _mgr(req).unpause(req.params["id"])
    return empty_response(204)


async def rename(req: Request) -> Response:
    await _mgr(req).rename(req.params["id"], req.query_get("name") or "")
    return empty_response(204)


async def remove(req: Request) -> Response:
    await _mgr(req).remove(req.params["id"], req.query_bool("force"), req.query_bool("v"))
    return empty_response(204)


async def prune(req: Request) -> Response:
    return json_response(await _mgr(req).prune(req.filters()))


async def wait(req: Request) -> Response:
    m = _mgr(req)
    c = m.get(req.params["id"])
    condition = req.query_get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r}")

    async def gen() -> AsyncIterator[bytes]:
        code, _err = await m.wait(c.id, condition)
        # dockerd reports a failed start through the start call, not here
        body: dict[str, Any] = {"StatusCode": code, "Error": None}
        yield (json.dumps(body) + "\n").encode()

    # The header goes out at once: `docker run` waits for it before start.
    return stream_response(gen(), "application/json")


async def resize(req: Request) -> Response:
    h, w = resize_size(req)
    await _mgr(req).resize(req.params["id"], h, w)
    return empty_response(200)


def resize_size(req: Request) -> tuple[int, int]:
    """The `h` and `w` of a resize request, with Docker's error texts."""
    out = []
    for key, word in (("h", "height"), ("w", "width")):
        raw = req.query_get(key) or "0"
        try:
            v = int(raw)
            if v < 0 or v > 0xFFFFFFFF:
                raise ValueError
        except ValueError:
            raise InvalidParameter(f'invalid resize {word} "{raw}"') from None
        out.append(v)
    return out[0], out[1]


async def attach(req: Request) -> Response:
    m = _mgr(req)
    c = m.get(req.params["id"])
    check_attachable(c)
    keys = parse_detach_keys(req.query_get("detachKeys"))
    tty = bool(c.config.get("Tty"))
    multiplexed = not tty
    ctype = MUX if multiplexed and req.api_version >= (1, 42) else RAW
    opts = {"stdin": req.query_bool("stdin"), "stdout": req.query_bool("stdout"),
                "stderr": req.query_bool("stderr"), "stream": req.query_bool("stream"),
                "logs": req.query_bool("logs")}

    def replay() -> AsyncIterator[tuple[int, bytes]]:
        return m.read_logs(c, stdout=True, stderr=True, since_ns=None, until_ns=None,
                           tail=None, timestamps=False, follow=False)

    async def run(stream: HijackedStream) -> None:
        await attach_session(m, c, stream, stream,  # type: ignore[arg-type]
                             detach_keys=keys, multiplexed=multiplexed, replay=replay, **opts)

    return HijackResponse(run, ctype)


async def logs(req: Request) -> Response:
    m = _mgr(req)
    c = m.get(req.params["id"])
    stdout, stderr = req.query_bool("stdout"), req.query_bool("stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    if (c.host_config.get("LogConfig") or {}).get("Type", "json-file") == "none":
        raise NotImplementedByEngine("configured logging driver does not support reading")
    from dockyard.engine.logs_format import parse_since, parse_until

    since = parse_since(req.query_get("since") or "0") or None
    until = parse_until(req.query_get("until") or "")
    tail_raw = req.query_get("tail") or "all"
    tail: int | None
    if tail_raw == "all":
        tail = None
    else:
        try:
            tail = int(tail_raw)
        except ValueError:
            tail = None
        if tail is not None and tail < 0:
            tail = None
    tty = bool(c.config.get("Tty"))
    records = m.read_logs(c, stdout=stdout, stderr=stderr, since_ns=since, until_ns=until,
                          tail=tail, timestamps=req.query_bool("timestamps"),
                          follow=req.query_bool("follow"))

    async def gen() -> AsyncIterator[bytes]:
        async for stream_no, data in records:
            yield data if tty else frame(stream_no, data)

    return stream_response(gen(), RAW if tty else MUX)


async def attach_ws(req: Request) -> Response:
    """Attach over a websocket: raw stdout/stderr (never multiplexed), binary
    frames from API 1.28, text before; stdin from the client's frames."""
    m = _mgr(req)
    c = m.get(req.params["id"])
    check_attachable(c)
    keys = parse_detach_keys(req.query_get("detachKeys"))
    old = req.api_version < (1, 42)
    opts = {"stdin": old or req.query_bool("stdin"), "stdout": old or req.query_bool("stdout"),
                "stderr": old or req.query_bool("stderr"), "stream": req.query_bool("stream"),
                "logs": req.query_bool("logs")}
    binary = req.api_version >= (1, 28)

    def replay() -> AsyncIterator[tuple[int, bytes]]:
        return m.read_logs(c, stdout=True, stderr=True, since_ns=None, until_ns=None,
                           tail=None, timestamps=False, follow=False)

    async def run(ws: WebSocket) -> None:
        await attach_session(m, c, _WsReader(ws), _WsWriter(ws, binary),  # type: ignore[arg-type]
                             detach_keys=keys, multiplexed=False, replay=replay, **opts)

    return WebSocketResponse(run)


class _WsWriter:
    """Each write becomes one message, sent at the next drain."""

    def __init__(self, ws: WebSocket, binary: bool) -> None:
        self._ws = ws
        self._binary = binary
        self._queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._queued.append(data)

    async def drain(self) -> None:
        while self._queued:
            await self._ws.send(self._queued.pop(0), self._binary)


class _WsReader:
    """Client messages in, payload bytes out; the websocket's end is the end of stdin."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    async def read(self, n: int = -1) -> bytes:
        while True:
            data = await self._ws.receive()
            if data is None:
                return b""
            if data:
                return data


async def not_yet(req: Request) -> Response:
    raise NotImplementedByEngine(f"{req.method} {req.path} is not implemented by dockyard yet")


def register(r: Router) -> None:
    r.add("GET", "/containers/json", list_containers)
    r.add("POST", "/containers/create", create)
    r.add("POST", "/containers/prune", prune)
    r.add("GET", "/containers/{id}/json", inspect)
    r.add("POST", "/containers/{id}/start", start)
    r.add("POST", "/containers/{id}/stop", stop)
    r.add("POST", "/containers/{id}/restart", restart)
    r.add("POST", "/containers/{id}/kill", kill)
    r.add("POST", "/containers/{id}/pause", pause)
    r.add("POST", "/containers/{id}/unpause", unpause)
    r.add("POST", "/containers/{id}/rename", rename)
    r.add("POST", "/containers/{id}/wait", wait)
    r.add("POST", "/containers/{id}/resize", resize)
    r.add("POST", "/containers/{id}/attach", attach)
    r.add("GET", "/containers/{id}/logs", logs)
    r.add("DELETE", "/containers/{id}", remove)
    r.add("GET", "/containers/{id}/attach/ws", attach_ws)


__all__ = ["Conflict", "register"]
