"""`Distribution`: the registry side of the image store, daemon-wide.

It holds what outlives one pull or push: the registry configuration
(mirrors, insecure registries, certificates), the connection pools and
token cache, the download and upload slots (`max-concurrent-downloads`,
default 3, and `max-concurrent-uploads`, default 5, shared by every pull
and push as in dockerd) and the layer metadata.  Pulls and pushes run as
tasks whose progress records the caller reads as a stream; a caller that
stops reading (its client left) cancels the task, which undoes what it
staged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

from dockyard.errors import DockyardError, Forbidden, InvalidParameter, NotFound
from dockyard.images.distribution.auth import AuthConfig
from dockyard.images.distribution.client import RepositoryClient, Transport
from dockyard.images.distribution.errors import RegistryHTTPError, RegistryUnreachable, pull_error
from dockyard.images.distribution.hosts import DOCKER_CERTS_DIR, RegistryHosts
from dockyard.images.distribution.metadata import BlobSource, LayerMetadata
from dockyard.images.distribution.platforms import Platform
from dockyard.images.distribution.proxies import Proxies
from dockyard.images.distribution.pull import PulledLayer, PullJob, status
from dockyard.images.distribution.push import PushJob, repo_tags
from dockyard.images.distribution.remote import inspect_remote, login
from dockyard.images.reference import Reference, parse_normalized_named
from dockyard.images.service import ImageService
from dockyard.images.store import StagedLayer
from dockyard.util import fstree
from dockyard.util.cancel import CancelToken, run_in_thread

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
MAX_TAGS = 10000


@dataclass(frozen=True)
class DistributionOptions:
    mirrors: list[str] = field(default_factory=list)
    insecure: list[str] = field(default_factory=list)
    certs_dirs: list[Path] = field(default_factory=lambda: [DOCKER_CERTS_DIR])
    max_downloads: int = 3
    max_uploads: int = 5
    retry_delay: float = 1.0          # seconds, times the attempt number
    proxies: Proxies = field(default_factory=Proxies)


class Distribution:
    def __init__(self, images: ImageService, opts: DistributionOptions,
                 hosts: RegistryHosts | None = None) -> None:
        if opts.max_downloads < 1 or opts.max_uploads < 1:
            raise InvalidParameter("max-concurrent-downloads and max-concurrent-uploads "
                                   "must be at least 1")
        self.images = images
        self.opts = opts
        self.hosts = hosts or RegistryHosts(list(opts.mirrors), list(opts.insecure),
                                            list(opts.certs_dirs), opts.proxies)
        self.transport = Transport(self.hosts)
        self.download_slots = asyncio.Semaphore(opts.max_downloads)
        self.upload_slots = asyncio.Semaphore(opts.max_uploads)
        self.retry_delay = opts.retry_delay
        self.metadata = LayerMetadata(images.store.root / "distribution.json")
        # what was removed while the daemon ran before (rmi, prune) is forgotten
        self.metadata.forget_missing({d for rec in images.store.images.values()
                                      for d in rec.diff_ids})

    async def close(self) -> None:
        await self.transport.close()

    # -- what a job asks of the store ------------------------------------------

    def layer_present(self, chain_id: str, diff_id: str) -> bool:
        st = self.images.store
        return st.has_layer(chain_id) and st.blob_path(diff_id).exists()

    def stored_config(self, image_id: str) -> bytes | None:
        """The config of an image that is here whole (all its layers too)."""
        rec = self.images.store.images.get(image_id)
        if rec is None or not all(self.images.store.has_layer(c) for c in rec.chain_ids):
            return None
        return rec.config_bytes

    def new_temp(self, prefix: str) -> Path:
        return self.images.store.new_temp(prefix)

    def stage_layer(self, tar: Path, diff_id: str, chain_id: str, parent: str,
                    wrap: Callable[[IO[bytes]], IO[bytes]], token: CancelToken) -> StagedLayer:
        return self.images.store.stage_layer(tar, diff_id, chain_id, parent,
                                             self.images.privileged_layers, token, wrap)

    @staticmethod
    def threadsafe(emit: Emit) -> Emit:
        loop = asyncio.get_running_loop()

        def from_thread(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(emit, msg)
        return from_thread

    async def discard(self, layers: list[PulledLayer]) -> None:
        """Remove what a pull staged and did not commit."""
        def work(_token: CancelToken) -> None:
            for x in layers:
                if x.staged is not None and x.staged.path.exists():
                    fstree.remove_quietly(x.staged.path, "staged layer")
                if x.tar is not None:
                    x.tar.unlink(missing_ok=True)
        await run_in_thread(work)

    async def commit_pull(self, ref: Reference, manifest_digest: str, config_bytes: bytes,
                          layers: list[PulledLayer], sources: list[tuple[str, BlobSource]],
                          token: CancelToken) -> bool:
        """Layers, image and references into the store, all or nothing;
        True when the reference now names another image than before."""
        st = self.images.store

        def work(_token: CancelToken) -> bool:
            made_layers = False
            try:
                for x in layers:
                    if x.staged is not None and x.tar is not None:
                        made_layers |= st.commit_layer(x.staged, x.tar)
                        x.staged = None
                rec, _new = st.add_image(config_bytes)
            except BaseException:
                if made_layers:
                    st.gc_layers()
                raise
            # the tag (when pulled by tag) and the repository digest, as dockerd
            digest_ref = Reference(ref.domain, ref.path, "", manifest_digest)
            named = ref if ref.tag else digest_ref
            changed = st.refs.get(str(named)) != rec.id
            if ref.tag:
                st.set_ref(ref, rec.id)
            st.set_ref(digest_ref, rec.id)
            return changed

        async with self.images.lock:
            changed = await run_in_thread(work, token=token)
        await asyncio.to_thread(self.metadata.add, sources)
        self.images.emit_events([("pull", ref.familiar(), {"name": ref.familiar_name})])
        return changed

    # -- streams of progress records -------------------------------------------

    async def _stream(self, work: Callable[[Emit, CancelToken], Awaitable[None]]
                      ) -> AsyncIterator[dict[str, Any]]:
        """Run `work` as a task; yield its records as they come; its error
        after its last record.  Leaving early cancels it and waits for its
        undo."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        token = CancelToken()
        task = asyncio.ensure_future(work(queue.put_nowait, token))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                task.result()
                return
        finally:
            if not task.done():
                token.cancel()
                task.cancel()
                while not task.done():
                    try:
                        await asyncio.wait({task})
                    except asyncio.CancelledError:
                        continue
            if not task.cancelled():
                task.exception()

    # -- pull ------------------------------------------------------------------

    def pull(self, ref: Reference, platform: Platform | None, creds: AuthConfig
             ) -> AsyncIterator[dict[str, Any]]:
        """Progress records of a pull of `ref` (a tag, a digest, or a bare
        name for every tag)."""
        if ref.path in ("scratch", "library/scratch") and ref.domain == "docker.io":
            raise Forbidden("'scratch' is a reserved name")

        async def work(emit: Emit, token: CancelToken) -> None:
            await self._pull(ref, platform, creds, emit, token)
        return self._stream(work)

    async def _pull(self, ref: Reference, platform: Platform | None, creds: AuthConfig,
                    emit: Emit, token: CancelToken) -> None:
        last: DockyardError | None = None
        for ep in self.hosts.pull_endpoints(ref.domain):
            repo = RepositoryClient(self.transport, ep, ref.path, creds)
            started = False
            try:
                if ref.tag or ref.digest:
                    job = PullJob(repo, ref, platform, self, emit)
                    try:
                        changed, _digest = await job.run(token)
                    finally:
                        started = job.layers_started
                    shown = ref.familiar()
                else:
                    changed = False
                    for tag in await self._tags(repo, ref):
                        job = PullJob(repo, ref.with_tag(tag), platform, self, emit)
                        try:
                            changed |= (await job.run(token))[0]
                        finally:
                            started |= job.layers_started
                    shown = ref.familiar_name
                word = "Downloaded newer image for" if changed else "Image is up to date for"
                emit(status(f"Status: {word} {shown}"))
                return
            except RegistryUnreachable as e:
                if started:
                    raise
                log.info("pull %s from %s: %s", ref, ep.url, e.message)
                last = e
            except DockyardError as e:
                if not ep.mirror or started:
                    raise
                log.info("pull %s from mirror %s: %s; trying the next endpoint", ref, ep.url,
                         e.message)
                last = e
        assert last is not None
        raise last

    async def _tags(self, repo: RepositoryClient, ref: Reference) -> list[str]:
        tags: list[str] = []
        url: str | None = f"{repo.base}/tags/list"
        while url and len(tags) < MAX_TAGS:
            try:
                resp = await repo.request("GET", url)
            except RegistryHTTPError as e:
                raise pull_error(e, ref.familiar_name, ref.familiar()) from None
            try:
                doc = resp.json()
                page = doc.get("tags") or []
                if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                    raise ValueError("tags is not a list of strings")
            except (ValueError, AttributeError) as e:
                raise RegistryUnreachable(f"invalid tag list from {url}: {e}") from None
            tags += page
            url = _next_link(resp.headers.get("link", ""), url)
        return tags


    # -- push --------------------------------------------------------------------

    def push(self, ref: Reference, creds: AuthConfig) -> AsyncIterator[dict[str, Any]]:
        """Progress records of a push of `ref` (a tag, or a bare name for
        every tag of the repository)."""
        async def work(emit: Emit, token: CancelToken) -> None:
            await self._push(ref, creds, emit, token)
        return self._stream(work)

    async def _push(self, ref: Reference, creds: AuthConfig, emit: Emit,
                    token: CancelToken) -> None:
        st = self.images.store
        emit(status(f"The push refers to repository [{ref.name}]"))
        if ref.tag:
            rec = st.lookup_ref(ref)
            if rec is None:
                raise NotFound(f"tag does not exist: {ref.familiar()}")
            targets = [(ref, rec)]
        else:
            tags = repo_tags(iter(parse_normalized_named(r) for r in st.refs), ref)
            if not tags:
                raise NotFound(f"An image does not exist locally with the tag: "
                               f"{ref.familiar_name}")
            targets = [(t, rec) for t in tags if (rec := st.lookup_ref(t)) is not None]
        last: DockyardError | None = None
        for ep in self.hosts.push_endpoints(ref.domain):
            try:
                # the first endpoint that answers takes the push (https, then
                # plain http for an insecure registry); nothing is retried
                # elsewhere once layers have started to go up
                await self.transport.challenges(ep)
            except RegistryUnreachable as e:
                log.info("push %s to %s: %s", ref, ep.url, e.message)
                last = e
                continue
            repo = RepositoryClient(self.transport, ep, ref.path, creds, ("pull", "push"))
            for target, rec in targets:
                job = PushJob(repo, target, rec, self, emit, token)
                digest = await job.run()
                await self._record_push(target, digest, rec.id)
            return
        assert last is not None
        raise last

    async def _record_push(self, ref: Reference, digest: str, image_id: str) -> None:
        st = self.images.store
        async with self.images.lock:
            if image_id in st.images:
                await asyncio.to_thread(st.set_ref, Reference(ref.domain, ref.path, "", digest),
                                        image_id)
        self.images.emit_events([("push", ref.familiar(), {"name": ref.familiar_name})])

    # -- login and inspect --------------------------------------------------------

    async def login(self, creds: AuthConfig) -> dict[str, Any]:
        return await login(self.transport, self.hosts, creds)

    async def inspect(self, ref: Reference, creds: AuthConfig) -> dict[str, Any]:
        return await inspect_remote(self.transport, self.hosts, ref, creds)


def _next_link(header: str, current: str) -> str | None:
    """RFC 5988 `Link: </v2/...?last=x>; rel="next"` (relative to the registry)."""
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            target = part[part.index("<") + 1:part.index(">")]
            return urljoin(current, target)
    return None
