"""Exec routes (moby daemon/server/router/container/exec.go): parse, call the
engine's ExecManager, shape the answer."""

from __future__ import annotations

from typing import Any

from dockyard import API_VERSION, __version__
from dockyard.api.containers import resize_size
from dockyard.api.server import (
    HijackedStream,
    HijackResponse,
    Request,
    Response,
    Router,
    empty_response,
    json_response,
)
from dockyard.engine.execs import console_size_of
from dockyard.errors import InvalidParameter, NotImplementedByEngine

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def _execs(req: Request) -> Any:
    if req.engine.execs is None:
        raise NotImplementedByEngine("exec is not available: no container runtime")
    return req.engine.execs


def _hijack_headers() -> dict[str, str]:
    # dockerd copies its middleware headers into the hijacked response head.
    return {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux",
            "Server": f"dockyard/{__version__} (linux)"}


async def create(req: Request) -> Response:
    body = await req.json()
    if isinstance(body, dict) and req.api_version < (1, 42):
        body.pop("ConsoleSize", None)
    exec_id = await _execs(req).create(req.params["id"], body)
    return json_response({"Id": exec_id}, 201)


async def start(req: Request) -> Response:
    body = await req.json()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: exec start config must be an object")
    execs = _execs(req)
    exec_id = req.params["id"]
    execs.get_startable(exec_id)     # 404/409 as HTTP errors, before the hijack
    tty = bool(body.get("Tty"))
    console = console_size_of(body.get("ConsoleSize"))
    if req.api_version < (1, 42) or not tty:
        console = None
    if body.get("Detach"):
        await execs.start_detached(exec_id, console)
        return empty_response(200)
    ctype = MUX if not tty and req.api_version >= (1, 42) else RAW

    async def run(stream: HijackedStream) -> None:
        await execs.start_attached(exec_id, stream, stream, tty=tty,  # type: ignore[arg-type]
                                   console_size=console)

    return HijackResponse(run, ctype, _hijack_headers())


async def resize(req: Request) -> Response:
    h, w = resize_size(req)
    await _execs(req).resize(req.params["id"], h, w)
    return empty_response(200)


async def inspect(req: Request) -> Response:
    return json_response(_execs(req).inspect(req.params["id"]))


def register(r: Router) -> None:
    r.add("POST", "/containers/{id}/exec", create)
    r.add("POST", "/exec/{id}/start", start)
    r.add("POST", "/exec/{id}/resize", resize)
    r.add("GET", "/exec/{id}/json", inspect)
