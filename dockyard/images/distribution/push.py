"""`docker push`: layers, config and a Docker v2 schema 2 manifest.

Each layer (top first in the progress, as dockerd shows them) is, in this
order of preference:
* already in the target repository: a blob this layer was pulled from or
  pushed as before (the layer metadata) answers a HEAD there
  (`Layer already exists`);
* mounted from another repository of the same registry that has it
  (`POST .../blobs/uploads/?mount=<digest>&from=<repo>`, `Mounted from x`);
* compressed (gzip, as dockerd) and uploaded as it is compressed: chunked
  PATCHes with Content-Range, then the closing PUT with the digest, so
  nothing is staged on disk.  A registry that answers the mount request
  with an upload session (202) gets the layer through that session.
The config goes up in one PUT (a monolithic upload).  The manifest PUT
names the tag; the digest of its exact bytes is reported (`1: digest:
sha256:... size: 527`, and an aux record) and recorded as the image's
repository digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

from dockyard.errors import DockyardError, NotFound
from dockyard.images.distribution import manifest as mf
from dockyard.images.distribution.client import RepositoryClient
from dockyard.images.distribution.errors import RegistryHTTPError, push_error
from dockyard.images.distribution.metadata import BlobSource
from dockyard.images.progress import progress_message, short_id
from dockyard.images.reference import Reference
from dockyard.images.store import ImageRecord
from dockyard.util.cancel import CancelToken, run_in_thread

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
CHUNK = 8 << 20                   # bytes per PATCH
READ = 1 << 20
GZIP_LEVEL = 6                    # Go's gzip.DefaultCompression, as dockerd
PROGRESS_INTERVAL = 0.1


def update(ident: str, text: str) -> dict[str, Any]:
    return {"status": text, "progressDetail": {}, "id": ident}


class GzipChunks:
    """A layer tar, gzip-compressed in chunks of about CHUNK bytes
    (synchronous; each `next_chunk` runs in a worker thread)."""

    def __init__(self, path: Any, token: CancelToken) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._token = token
        self.read = 0
        self.digest = hashlib.sha256()
        self.size = 0
        self.done = False

    def next_chunk(self) -> bytes:
        out = bytearray()
        while len(out) < CHUNK and not self.done:
            self._token.check()
            data = self._f.read(READ)
            self.read += len(data)
            if data:
                out += self._z.compress(data)
            else:
                out += self._z.flush()
                self.done = True
        self.digest.update(out)
        self.size += len(out)
        return bytes(out)

    def close(self) -> None:
        self._f.close()


class PushJob:
    def __init__(self, repo: RepositoryClient, ref: Reference, rec: ImageRecord, ctx: Any,
                 emit: Emit, token: CancelToken) -> None:
        self.repo = repo
        self.ref = ref
        self.rec = rec
        self.ctx = ctx
        self.emit = emit
        self.token = token
        self.uploaded = False

    async def run(self) -> str:
        layers = list(self.rec.diff_ids)
        idents = [short_id(d) for d in layers]
        for ident in reversed(idents):
            self.emit(update(ident, "Preparing"))
        tasks = [asyncio.ensure_future(self._layer(d, ident))
                 for d, ident in zip(layers, idents)]
        try:
            descs = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        config = mf.Descriptor(mf.DOCKER_CONFIG, self.rec.id, len(self.rec.config_bytes))
        if not await self._exists(config.digest):
            await self._upload_bytes(self.rec.config_bytes, config.digest)
        body = mf.schema2_manifest(config, descs)
        digest = mf.sha256_digest(body)
        try:
            await self.repo.request("PUT", f"{self.repo.base}/manifests/{self.ref.tag}",
                                    {"Content-Type": mf.DOCKER_MANIFEST}, body, ok=(201, 200))
        except RegistryHTTPError as e:
            raise push_error(e) from None
        self.emit({"status": f"{self.ref.tag}: digest: {digest} size: {len(body)}"})
        self.emit({"progressDetail": {}, "aux": {"Tag": self.ref.tag, "Digest": digest,
                                                 "Size": len(body)}})
        return digest

    async def _exists(self, digest: str) -> mf.Descriptor | None:
        try:
            resp = await self.repo.request("HEAD", f"{self.repo.base}/blobs/{digest}",
                                           ok=(200, 404))
        except RegistryHTTPError as e:
            raise push_error(e) from None
        if resp.status_code != 200:
            return None
        size = resp.headers.get("content-length", "")
        return mf.Descriptor(mf.DOCKER_LAYER_GZIP, digest, int(size) if size.isdigit() else 0)

    async def _layer(self, diff_id: str, ident: str) -> mf.Descriptor:
        sem = self.ctx.upload_slots
        if sem.locked():
            self.emit(update(ident, "Waiting"))
        async with sem:
            return await self._push_layer(diff_id, ident)

    async def _push_layer(self, diff_id: str, ident: str) -> mf.Descriptor:
        host = self.ref.domain
        known = [s for s in self.ctx.metadata.sources(diff_id)
                 if s.repository.split("/", 1)[0] == host and s.media_type in mf.LAYER_TYPES]
        for src in known:
            if src.repository == self.ref.name:
                found = await self._exists(src.digest)
                if found:
                    self.emit(update(ident, "Layer already exists"))
                    return mf.Descriptor(src.media_type, src.digest, src.size)
        for src in known:
            if src.repository != self.ref.name and await self._exists(src.digest):
                self.emit(update(ident, "Layer already exists"))
                return mf.Descriptor(src.media_type, src.digest, src.size)
        session = ""
        for src in known:
            if src.repository == self.ref.name:
                continue
            from_path = src.repository.split("/", 1)[1]
            url = f"{self.repo.base}/blobs/uploads/?" + urlencode(
                {"mount": src.digest, "from": from_path})
            self.repo.extra_scopes = [f"repository:{from_path}:pull"]
            try:
                resp = await self.repo.request("POST", url, ok=(201, 202))
            except RegistryHTTPError:
                continue            # not allowed to read there: upload instead
            finally:
                self.repo.extra_scopes = []
            if resp.status_code == 201:
                name = Reference(host, from_path).familiar_name
                self.emit(update(ident, f"Mounted from {name}"))
                await self._remember(diff_id, mf.Descriptor(src.media_type, src.digest,
                                                            src.size))
                return mf.Descriptor(src.media_type, src.digest, src.size)
            session = urljoin(url, resp.headers.get("location", ""))
            break
        desc = await self._upload_layer(diff_id, ident, session)
        self.emit(update(ident, "Pushed"))
        await self._remember(diff_id, desc)
        return desc

    async def _remember(self, diff_id: str, desc: mf.Descriptor) -> None:
        await asyncio.to_thread(self.ctx.metadata.add, [(diff_id, BlobSource(
            desc.digest, desc.media_type, desc.size, self.ref.name))])

    async def _start_upload(self) -> str:
        try:
            resp = await self.repo.request("POST", f"{self.repo.base}/blobs/uploads/",
                                           ok=(202,))
        except RegistryHTTPError as e:
            raise push_error(e) from None
        loc = resp.headers.get("location")
        if not loc:
            raise DockyardError("the registry started an upload without a Location")
        return urljoin(f"{self.repo.base}/blobs/uploads/", loc)

    async def _upload_bytes(self, data: bytes, digest: str) -> None:
        loc = await self._start_upload()
        try:
            await self.repo.request("PUT", _with_query(loc, {"digest": digest}),
                                    {"Content-Type": "application/octet-stream"}, data,
                                    ok=(201, 204))
        except RegistryHTTPError as e:
            raise push_error(e) from None

    async def _upload_layer(self, diff_id: str, ident: str, session: str) -> mf.Descriptor:
        path = self.ctx.images.store.blob_path(diff_id)
        if not path.exists():
            raise NotFound(f"layer {diff_id} of {self.ref.familiar()} is not in the store")
        total = path.stat().st_size
        loc = session or await self._start_upload()
        gz = await asyncio.to_thread(GzipChunks, path, self.token)
        offset = 0
        try:
            while not gz.done:
                chunk = await run_in_thread(lambda _t: gz.next_chunk(), token=self.token)
                self.emit(progress_message(ident, "Pushing", gz.read, total))
                if not chunk:
                    continue
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                try:
                    resp = await self.repo.request("PATCH", loc, headers, chunk, ok=(202, 204))
                except RegistryHTTPError as e:
                    raise push_error(e) from None
                offset += len(chunk)
                loc = urljoin(loc, resp.headers.get("location", loc))
            digest = "sha256:" + gz.digest.hexdigest()
            try:
                await self.repo.request("PUT", _with_query(loc, {"digest": digest}),
                                        ok=(201, 204))
            except RegistryHTTPError as e:
                raise push_error(e) from None
        finally:
            gz.close()
        self.uploaded = True
        return mf.Descriptor(mf.DOCKER_LAYER_GZIP, digest, gz.size)


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def repo_tags(refs: Iterator[Reference], name: Reference) -> list[Reference]:
    """The tags of one repository, sorted (a push of a bare name pushes all)."""
    return sorted((r for r in refs if r.name == name.name and r.tag and not r.digest),
                  key=lambda r: r.tag)
