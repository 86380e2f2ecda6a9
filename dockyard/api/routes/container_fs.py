"""Container filesystem routes: export, changes, archive (docker cp), commit."""

from __future__ import annotations

import base64
import json
from typing import Any

from dockyard.api.server import (
    Request,
    Response,
    Router,
    cancel_on_disconnect,
    empty_response,
    json_response,
    stream_response,
)
from dockyard.backend import CommitOptions, ContainerFilesBackend, ExtractOptions
from dockyard.errors import InvalidParameter

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _path(req: Request) -> str:
    path = req.query_get("path") or ""
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    return path


def _stat_header(stat: dict[str, Any]) -> dict[str, str]:
    raw = json.dumps(stat, separators=(",", ":")).encode()
    return {STAT_HEADER: base64.b64encode(raw).decode()}


class ContainerFilesRoutes:
    def __init__(self, backend: ContainerFilesBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/containers/{id}/export", self.export)
        r.add("GET", "/containers/{id}/changes", self.changes)
        r.add("GET", "/containers/{id}/archive", self.get_archive)
        r.add("PUT", "/containers/{id}/archive", self.put_archive)
        r.add("POST", "/commit", self.commit)

    async def export(self, req: Request) -> Response:
        chunks = await self.backend.export(req.params["id"])
        return stream_response(chunks, "application/x-tar")

    async def changes(self, req: Request) -> Response:
        out = await self.backend.changes(req.params["id"])
        # moby answers null, not [], when nothing changed
        return json_response(out or None)

    async def get_archive(self, req: Request) -> Response:
        path = _path(req)
        if req.method == "HEAD":
            stat = await self.backend.stat_path(req.params["id"], path)
            return empty_response(200, _stat_header(stat))
        stat, chunks = await self.backend.archive_path(req.params["id"], path)
        return stream_response(chunks, "application/x-tar", headers=_stat_header(stat))

    async def put_archive(self, req: Request) -> Response:
        path = _path(req)
        opts = ExtractOptions(copy_uid_gid=req.query_bool("copyUIDGID"),
                              no_overwrite_dir_non_dir=req.query_bool("noOverwriteDirNonDir"))
        await self.backend.extract_to_dir(req.params["id"], path, req.body_chunks(), opts)
        return empty_response(200)

    async def commit(self, req: Request) -> Response:
        body = await req.json()
        if body is not None and not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: config must be an object")
        opts = CommitOptions(
            container=req.query_get("container") or "", repo=req.query_get("repo") or "",
            tag=req.query_get("tag") or "", comment=req.query_get("comment") or "",
            author=req.query_get("author") or "",
            # an absent or empty `pause` means pause (API >= 1.13)
            pause=(req.query_get("pause") or "") == "" or req.query_bool("pause"),
            changes=req.query_all("changes"), config=body)
        # nobody learns the ID of an image committed for a client gone meanwhile
        image_id = await cancel_on_disconnect(req, self.backend.commit(opts))
        return json_response({"Id": image_id}, 201)
