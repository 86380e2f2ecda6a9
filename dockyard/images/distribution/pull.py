"""`docker pull`: a manifest (or an index and the platform's manifest), its
config, then the layers, into the image store.

Order of work, as dockerd's puller, with one difference that makes it
faster: every layer is unpacked (into the store's staging area) as soon as
it has arrived and been verified, while others still download; dockerd
unpacks them one after another.  Nothing enters the store before the
whole image has arrived and every digest has been checked: the commit at
the end moves the staged layers and tars into place, records the image,
its tag and its repository digest (RepoDigests) under the store's lock.
Whatever fails or is cancelled before that leaves nothing but staging,
which is removed at once (and swept at the next start after a crash).

Each layer blob is read once: the bytes are hashed (the manifest's digest),
decompressed (gzip, zstd, ...), hashed again (the config's diff_id) and
written as the uncompressed tar the store keeps.  A dropped connection is
resumed with a Range request from the byte it stopped at, up to five
attempts; a registry that ignores the range starts the blob over.

Progress records are dockerd's, so the docker CLI draws its bars: per layer
`Pulling fs layer`, `Waiting`, `Downloading` (current/total),
`Verifying Checksum`, `Download complete`, `Extracting`, `Pull complete`
(or `Already exists`), then `Digest:` and `Status:`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.distribution import manifest as mf
from dockyard.images.distribution.client import (
    RepositoryClient,
    httpx_module,
    transport_errors,
)
from dockyard.images.distribution.errors import (
    RegistryHTTPError,
    RegistryUnreachable,
    pull_error,
)
from dockyard.images.distribution.layersink import LayerSink
from dockyard.images.distribution.metadata import BlobSource
from dockyard.images.distribution.platforms import (
    Platform,
    host_platform,
    no_match_message,
    select_manifests,
)
from dockyard.images.imageconfig import check_image_config
from dockyard.images.progress import ProgressReader, progress_message, short_id
from dockyard.images.reference import Reference
from dockyard.images.store import StagedLayer, chain_ids
from dockyard.util.cancel import CancelToken, run_in_thread

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
FEED = 1 << 20                  # bytes handed to the worker thread at once
ATTEMPTS = 5
PROGRESS_INTERVAL = 0.1


def status(text: str, ident: str = "") -> dict[str, Any]:
    msg: dict[str, Any] = {"status": text}
    if ident:
        msg["id"] = ident
    return msg


def update(ident: str, text: str) -> dict[str, Any]:
    return {"status": text, "progressDetail": {}, "id": ident}


@dataclass
class PulledLayer:
    desc: mf.Descriptor
    diff_id: str
    chain_id: str
    parent: str
    present: bool = False
    tar: Path | None = None
    staged: StagedLayer | None = None


@dataclass
class Resolved:
    """What a tag or digest names, once fetched and checked."""

    manifest_digest: str            # the digest the user's reference resolves to
    manifest: mf.ImageManifest
    config_bytes: bytes = b""
    config: dict[str, Any] = field(default_factory=dict)


class PullJob:
    """One image (one tag or digest) from one repository client."""

    def __init__(self, repo: RepositoryClient, ref: Reference, platform: Platform | None,
                 ctx: Any, emit: Emit) -> None:
        self.repo = repo
        self.ref = ref
        self.platform = platform
        self.ctx = ctx                   # the Distribution: store, limits, metadata
        self.emit = emit
        self.layers_started = False

    # -- manifests -------------------------------------------------------------

    async def fetch_manifest(self, reference: str, expect: str = "") -> tuple[bytes, str, str]:
        """(body, content type, digest) of a manifest by tag or digest."""
        url = f"{self.repo.base}/manifests/{reference}"
        try:
            resp = await self.repo.request("GET", url, {"Accept": ", ".join(mf.ACCEPT)})
        except RegistryHTTPError as e:
            raise pull_error(e, self.ref.familiar_name, self.ref.familiar()) from None
        body = resp.content
        if len(body) > mf.MAX_MANIFEST:
            raise InvalidParameter(f"manifest too big: {len(body)} bytes")
        if expect:
            got = mf.digest_of(expect, body)
            if got != expect:
                raise InvalidParameter(f"manifest verification failed for digest {expect}")
            digest = expect
        else:
            digest = mf.sha256_digest(body)
            header = resp.headers.get("docker-content-digest", "")
            if mf.valid_digest(header) and mf.digest_of(header, body) != header:
                raise InvalidParameter(f"manifest verification failed for digest {header}")
        return body, resp.headers.get("content-type", ""), digest

    async def resolve(self) -> Resolved:
        reference = self.ref.digest or self.ref.tag
        body, ctype, digest = await self.fetch_manifest(reference, self.ref.digest)
        parsed = mf.parse_manifest(body, ctype, str(self.ref))
        top_digest = digest
        want = self.platform or host_platform()
        depth = 0
        while isinstance(parsed, mf.Index):
            depth += 1
            if depth > 4:
                raise InvalidParameter("manifest list nested too deeply")
            candidates = [e for e in select_manifests(parsed.manifests, want)
                          if e.get("mediaType", "") in mf.IMAGE_MANIFESTS + mf.INDEXES + ("",)]
            if not candidates:
                raise NotFound(no_match_message(self.platform or host_platform()))
            entry = candidates[0]
            body, ctype, _ = await self.fetch_manifest(entry["digest"], entry["digest"])
            parsed = mf.parse_manifest(body, ctype or entry.get("mediaType", ""), str(self.ref))
        return Resolved(top_digest, parsed)

    async def fetch_config(self, res: Resolved) -> None:
        desc = res.manifest.config
        url = f"{self.repo.base}/blobs/{desc.digest}"
        try:
            resp = await self.repo.request("GET", url)
        except RegistryHTTPError as e:
            raise pull_error(e, self.ref.familiar_name, self.ref.familiar()) from None
        data = resp.content
        if mf.digest_of(desc.digest, data) != desc.digest:
            raise InvalidParameter(f"image config verification failed for digest {desc.digest}")
        try:
            cfg = check_image_config(json.loads(data))
        except (ValueError, RecursionError) as e:
            raise InvalidParameter(f"invalid image config {desc.digest}: {e}") from None
        rootfs = cfg.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise InvalidParameter("invalid rootfs in image configuration")
        if len(rootfs.get("diff_ids") or []) != len(res.manifest.layers):
            raise InvalidParameter("layers from manifest don't match image configuration")
        if cfg.get("os", "linux") != "linux":
            raise InvalidParameter(f'cannot download image with operating system "{cfg["os"]}" '
                                   'when requesting "linux"')
        res.config_bytes, res.config = data, cfg

    # -- layers ------------------------------------------------------------------

    def plan_layers(self, res: Resolved) -> list[PulledLayer]:
        diff_ids = list(res.config["rootfs"].get("diff_ids") or [])
        chains = chain_ids(diff_ids)
        out = []
        for i, desc in enumerate(res.manifest.layers):
            out.append(PulledLayer(desc, diff_ids[i], chains[i], chains[i - 1] if i else "",
                                   present=self.ctx.layer_present(chains[i], diff_ids[i])))
        return out

    async def fetch_layers(self, layers: list[PulledLayer], token: CancelToken) -> None:
        self.layers_started = True
        todo = []
        seen: set[str] = set()
        for layer in layers:
            ident = short_id(layer.desc.digest)
            if layer.present:
                self.emit(update(ident, "Already exists"))
            elif layer.desc.digest not in seen:
                self.emit(update(ident, "Pulling fs layer"))
                todo.append(layer)
            seen.add(layer.desc.digest)
        tasks = [asyncio.ensure_future(self._layer(layer, token)) for layer in todo]
        if not tasks:
            return
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            token.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        # a blob named twice in one manifest is fetched once
        by_digest = {x.desc.digest: x for x in todo}
        for layer in layers:
            if not layer.present and layer.tar is None:
                src = by_digest[layer.desc.digest]
                layer.tar, layer.staged = src.tar, None
                layer.present = src.chain_id == layer.chain_id

    async def _layer(self, layer: PulledLayer, token: CancelToken) -> None:
        ident = short_id(layer.desc.digest)
        sem = self.ctx.download_slots
        if sem.locked():
            self.emit(update(ident, "Waiting"))
        async with sem:
            layer.tar = await self._download(layer, ident)
        reader = self._extract_reader(ident, layer.tar.stat().st_size)
        layer.staged = await run_in_thread(self.ctx.stage_layer, layer.tar, layer.diff_id,
                                           layer.chain_id, layer.parent, reader, token=token)
        self.emit(update(ident, "Pull complete"))

    def _extract_reader(self, ident: str, size: int) -> Callable[[IO[bytes]], IO[bytes]]:
        emit = self.ctx.threadsafe(self.emit)

        def wrap(src: IO[bytes]) -> IO[bytes]:
            return ProgressReader(src, size, ident, "Extracting", emit)  # type: ignore[return-value]
        return wrap

    async def _download(self, layer: PulledLayer, ident: str) -> Path:
        desc = layer.desc
        url = f"{self.repo.base}/blobs/{desc.digest}"
        tmp = self.ctx.new_temp("pull")
        sink = LayerSink(tmp, desc.digest.partition(":")[0])
        try:
            await self._fetch_into(sink, url, desc, ident)
            self.emit(update(ident, "Verifying Checksum"))
            if sink.digest != desc.digest or sink.received != desc.size:
                raise InvalidParameter(
                    f"filesystem layer verification failed for digest {desc.digest}")
            diff_id, _size = await run_in_thread(lambda _t: sink.finish())
            if diff_id != layer.diff_id:
                raise InvalidParameter(
                    f"layer {desc.digest} does not match its diff_id in the image "
                    f"configuration: expected {layer.diff_id}, got {diff_id}")
            self.emit(update(ident, "Download complete"))
            return tmp
        except BaseException:
            await run_in_thread(lambda _t: sink.abort())
            raise

    async def _fetch_into(self, sink: LayerSink, url: str, desc: mf.Descriptor,
                          ident: str) -> None:
        retried: tuple[type[BaseException], ...] = (*transport_errors(), RegistryUnreachable)
        for attempt in range(1, ATTEMPTS + 1):
            headers = {"Range": f"bytes={sink.received}-"} if sink.received else {}
            try:
                await self._fetch_once(sink, url, headers, desc, ident)
                self.emit(progress_message(ident, "Downloading", sink.received, desc.size))
                return
            except retried as e:
                if attempt == ATTEMPTS:
                    if isinstance(e, DockyardError):
                        raise
                    raise self.repo.transport.error("GET", url, e) from e
                delay = attempt
                log.info("layer %s: %s; resuming at byte %d", ident, e, sink.received)
                self.emit(update(ident, f"Retrying in {delay} second{'s' if delay != 1 else ''}"))
                await asyncio.sleep(self.ctx.retry_delay * delay)

    async def _fetch_once(self, sink: LayerSink, url: str, headers: dict[str, str],
                          desc: mf.Descriptor, ident: str) -> None:
        """One GET of the blob from where the sink stands; what arrived before
        a drop is kept (the next attempt asks for the rest)."""
        last = 0.0
        buf = bytearray()

        async def flush() -> None:
            if buf:
                data = bytes(buf)
                buf.clear()
                await run_in_thread(lambda _t: sink.write(data))

        async with self.repo.stream(url, headers) as resp:
            if resp.status_code not in (200, 206):
                err = await self.repo.error_of(resp)
                if resp.status_code == 416 and sink.received:
                    await run_in_thread(lambda _t: sink.reset())
                    raise httpx_module().ReadError("range not satisfiable")
                raise pull_error(err, self.ref.familiar_name, self.ref.familiar())
            if resp.status_code == 200 and sink.received:
                await run_in_thread(lambda _t: sink.reset())    # the range was ignored
            elif resp.status_code == 206 and not resp.headers.get(
                    "content-range", "").startswith(f"bytes {sink.received}-"):
                raise RegistryUnreachable(
                    f"{url}: the registry answered a request for bytes {sink.received}- with "
                    f"{resp.headers.get('content-range', 'no Content-Range')!r}")
            try:
                async for chunk in resp.aiter_raw():
                    buf += chunk
                    if sink.received + len(buf) > desc.size:
                        raise InvalidParameter(
                            f"filesystem layer verification failed for digest {desc.digest}")
                    if len(buf) >= FEED:
                        await flush()
                    now = time.monotonic()
                    if now - last >= PROGRESS_INTERVAL:
                        last = now
                        self.emit(progress_message(ident, "Downloading",
                                                   sink.received + len(buf), desc.size))
            except transport_errors():
                await flush()
                raise
            await flush()
        if sink.received != desc.size:
            # the registry sent all it meant to (a drop would have raised): not
            # the blob the manifest describes
            raise InvalidParameter(
                f"filesystem layer verification failed for digest {desc.digest}")

    # -- the whole -----------------------------------------------------------------

    async def run(self, token: CancelToken) -> tuple[bool, str]:
        """(tag changed, manifest digest) once the image is in the store."""
        res = await self.resolve()
        # dockerd names a digest pull by its whole reference, a tag pull by the tag
        self.emit(status(f"Pulling from {self.ref.path}",
                         str(self.ref) if self.ref.digest else self.ref.tag))
        layers: list[PulledLayer] = []
        try:
            # the image ID is its config's digest: an image already here whole
            # needs no blob at all (dockerd checks the same way)
            present = self.ctx.stored_config(res.manifest.config.digest)
            if present is not None:
                res.config_bytes = present
            else:
                await self.fetch_config(res)
                layers = self.plan_layers(res)
                await self.fetch_layers(layers, token)
            self.emit(status(f"Digest: {res.manifest_digest}"))
            changed = await self.ctx.commit_pull(self.ref, res.manifest_digest, res.config_bytes,
                                                 layers, self._sources(layers), token)
        finally:
            await self.ctx.discard(layers)
        return changed, res.manifest_digest

    def _sources(self, layers: list[PulledLayer]) -> list[tuple[str, BlobSource]]:
        return [(x.diff_id, BlobSource(x.desc.digest, x.desc.media_type, x.desc.size,
                                       self.ref.name)) for x in layers]
