"""ImageService: Docker's local image operations over the ImageStore.

The async methods are the Docker-shaped operations the API layer calls.
Every mutation runs under one asyncio.Lock (the store is a single-writer
structure) and its disk work in a thread, so the event loop never blocks on
tar or fsync.  Events are emitted from the loop after the work is done.

Lookups (`get`, `inspect`, `list_records`, `lower_dirs`, `image_config`)
are synchronous: they only read in-memory state.

Load, import and commit can be cancelled (their client left, the daemon
stops): the worker thread gets a `CancelToken`, stops at its next check
and undoes what it made (staging, layers no image uses, images the load
had added), holding the store's lock until it has.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import lzma
import os
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from dockyard.errors import InvalidParameter, NotFound
from dockyard.images import busybox, fsutil, shapes
from dockyard.images import filters as flt
from dockyard.images.archive import ArchiveReader, SaveItem, go_arch, open_compressed, write_archive
from dockyard.images.changes import apply_changes
from dockyard.images.imageconfig import check_image_config
from dockyard.images.layers import invalid_layer_tar
from dockyard.images.progress import ProgressReader, short_id
from dockyard.images.reference import (
    Reference,
    familiar_match,
    parse_any,
    parse_normalized_named,
    validate_tag,
)
from dockyard.images.removal import Remover
from dockyard.images.store import ImageRecord, ImageStore, chain_ids, now_rfc3339
from dockyard.util.cancel import CancelToken, check, run_in_thread, wait_until_done
from dockyard.util.threadgen import batched_in_thread

log = logging.getLogger(__name__)

EmitEvent = Callable[[str, str, dict[str, str]], None]
Emit = Callable[[dict[str, Any]], None]
ContainersUsing = Callable[[str], list[tuple[str, bool]]]
Event = tuple[str, str, dict[str, str]]
SPOOL_BUFFER = 4 << 20
SAVE_BATCH = 1 << 20
# the digest of an empty tar (two zero blocks): a commit without changes
EMPTY_TAR_DIFF_ID = ("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")


class ImageService:
    def __init__(self, data_root: Path, emit_event: EmitEvent,
                 containers_using: ContainersUsing, privileged_layers: bool = False) -> None:
        self.store = ImageStore(Path(data_root) / "images")
        self._emit = emit_event
        self._containers_using = containers_using
        self._privileged_layers = privileged_layers
        self._lock = asyncio.Lock()

    # -- lookups -----------------------------------------------------------------

    def get(self, name: str) -> ImageRecord:
        """Resolve a name, reference, ID or ID prefix as dockerd's GetImage."""
        return self.store.resolve(name)

    def list_records(self) -> list[ImageRecord]:
        """Every visible image (for counts in /info and engine bookkeeping)."""
        return [r for r in self.store.images.values() if not r.hidden]

    def lower_dirs(self, image_id: str) -> list[str]:
        """Overlay lowerdirs of an image, top layer first."""
        return self.store.lower_dirs(image_id)

    def image_config(self, image_id: str) -> dict[str, Any]:
        rec = self.store.images.get(image_id)
        if rec is None:
            raise NotFound(f"No such image: {image_id}")
        return json.loads(rec.config_bytes)

    @property
    def lock(self) -> asyncio.Lock:
        """Held by every change of the store (a pull's commit takes it too)."""
        return self._lock

    @property
    def privileged_layers(self) -> bool:
        return self._privileged_layers

    def emit_events(self, events: Iterable[Event]) -> None:
        self._emit_all(events)

    def _emit_all(self, events: Iterable[Event]) -> None:
        for action, actor, attrs in events:
            try:
                self._emit(action, actor, attrs)
            except Exception:          # an event sink must not undo a finished change
                log.exception("image event %s failed", action)

    def _attrs(self, rec: ImageRecord | None, name: str) -> dict[str, str]:
        return {**(rec.labels if rec else {}), "name": name}

    # -- spooling request bodies ------------------------------------------------

    async def _spool(self, chunks: AsyncIterator[bytes], prefix: str) -> Path:
        path = self.store.new_temp(prefix)
        f = await asyncio.to_thread(open, path, "wb")
        try:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
                if len(buf) >= SPOOL_BUFFER:
                    await asyncio.to_thread(f.write, bytes(buf))
                    buf.clear()
            await asyncio.to_thread(f.write, bytes(buf))
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(f.close)
        return path

    # -- load ----------------------------------------------------------------------

    async def load(self, chunks: AsyncIterator[bytes], quiet: bool = True
                   ) -> AsyncIterator[dict[str, Any]]:
        """dockerd's load: without quiet, "Loading layer" progress for each layer
        it unpacks, as it happens; then the `Loaded image` lines."""
        path = await self._spool(chunks, "load")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def progress(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        token = CancelToken()
        try:
            async with self._lock:
                job = asyncio.ensure_future(asyncio.to_thread(
                    self._load_sync, path, None if quiet else progress, token))
                try:
                    while not job.done():
                        getter = asyncio.ensure_future(queue.get())
                        await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                        if getter.done():
                            yield getter.result()
                        else:
                            getter.cancel()
                    while not queue.empty():
                        yield queue.get_nowait()
                    messages, events = job.result()
                finally:
                    if not job.done():
                        # the client went away: the worker stops and undoes its
                        # work; the store stays locked until it has
                        token.cancel()
                        await wait_until_done(job)
        finally:
            path.unlink(missing_ok=True)
        self._emit_all(events)
        for m in messages:
            yield m

    def _load_sync(self, path: Path, progress: Emit | None = None,
                   cancel: CancelToken | None = None
                   ) -> tuple[list[dict[str, Any]], list[Event]]:
        st = self.store
        reader = ArchiveReader(path)
        added: list[tuple[ImageRecord, list[Reference], bool]] = []
        try:
            for ai in reader.images():
                cfg_bytes = reader.read(ai.config_member)
                try:
                    cfg = check_image_config(json.loads(cfg_bytes))
                except (ValueError, RecursionError) as e:
                    raise InvalidParameter(f"invalid image config {ai.config_member}: {e}"
                                           ) from e
                diff_ids = list(cfg["rootfs"].get("diff_ids") or [])
                if len(diff_ids) != len(ai.layer_members):
                    raise InvalidParameter(
                        f"invalid manifest, layers length mismatch: expected {len(diff_ids)},"
                        f" got {len(ai.layer_members)}")
                chains = chain_ids(diff_ids)
                for i, member in enumerate(ai.layer_members):
                    if st.has_layer(chains[i]) and st.blob_path(diff_ids[i]).exists():
                        continue       # already unpacked: shared, not re-extracted
                    tmp = st.new_temp("blob")
                    try:
                        got = self._extract_layer(reader, member, tmp, diff_ids[i], progress,
                                                  cancel)
                        if got != diff_ids[i]:
                            raise InvalidParameter(
                                f"invalid diffID for layer {i}: expected "
                                f"\"{diff_ids[i]}\", got \"{got}\"")
                        st.add_layer(tmp, got, chains[i], chains[i - 1] if i else "",
                                     self._privileged_layers, cancel)
                    finally:
                        tmp.unlink(missing_ok=True)
                check(cancel)
                rec, new = st.add_image(cfg_bytes)
                added.append((rec, ai.repo_tags, new))
        except BaseException:
            # all or nothing: forget images this load created, then their layers
            for rec, _tags, new in added:
                if new:
                    st.delete_image(rec.id)
            st.gc_layers()
            raise
        finally:
            reader.close()
        messages: list[dict[str, Any]] = []
        events: list[Event] = []
        for rec, tags, _new in added:
            for ref in tags:
                old = st.set_ref(ref, rec.id)
                if old:
                    messages.append({"stream": f"The image {ref.familiar()} already exists, "
                                     f"renaming the old one with ID {old} to empty string\n"})
            events.append(("load", rec.id, self._attrs(rec, rec.id)))
            if tags:
                messages += [{"stream": f"Loaded image: {t.familiar()}\n"} for t in tags]
            else:
                messages.append({"stream": f"Loaded image ID: {rec.id}\n"})
        return messages, events

    @staticmethod
    def _extract_layer(reader: ArchiveReader, member: str, dest: Path, diff_id: str,
                       progress: Emit | None, cancel: CancelToken | None) -> str:
        wrap: Callable[[IO[bytes], int], ProgressReader] | None = None
        if progress is not None:
            emit = progress

            def wrap(src: IO[bytes], size: int) -> ProgressReader:
                return ProgressReader(src, size, short_id(diff_id), "Loading layer", emit)
        try:
            return reader.extract_layer(member, dest, wrap, cancel)
        except (EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise          # the host's failure, not the data's
            raise invalid_layer_tar(e) from e

    # -- save ----------------------------------------------------------------------

    def _save_items(self, names: list[str]) -> list[SaveItem]:
        by_id: dict[str, SaveItem] = {}
        for name in names:
            parsed = parse_any(name)
            tags: list[Reference] = []
            if isinstance(parsed, Reference) and not parsed.tag and not parsed.digest:
                # a bare repository name saves every tag of it, as docker does
                repo_refs = [parse_normalized_named(r) for r in self.store.refs
                             if parse_normalized_named(r).name == parsed.name]
                tagged = [r for r in repo_refs if r.tag and not r.digest]
                if tagged:
                    for r in tagged:
                        rec = self.store.lookup_ref(r)
                        assert rec is not None
                        item = by_id.setdefault(rec.id, SaveItem(
                            rec.id, rec.config_bytes, rec.diff_ids, []))
                        item.tags.append(r)
                    continue
            rec = self.get(name)
            if isinstance(parsed, Reference) and parsed.tag and not parsed.digest:
                tags = [parsed]
            item = by_id.setdefault(rec.id, SaveItem(rec.id, rec.config_bytes, rec.diff_ids, []))
            item.tags += [t for t in tags if t not in item.tags]
        return list(by_id.values())

    async def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """Stream a docker-archive; name errors raise before the first byte."""
        if not names:
            raise InvalidParameter("no images specified")
        items = self._save_items(names)
        self._emit_all(("save", i.image_id, self._attrs(self.store.images.get(i.image_id),
                                                          i.image_id)) for i in items)
        async for chunk in batched_in_thread(write_archive(items, self.store.blob_path),
                                             SAVE_BATCH):
            yield chunk

    # -- import --------------------------------------------------------------------

    async def import_image(self, chunks: AsyncIterator[bytes], repo: str = "", tag: str = "",
                           message: str = "", changes: Iterable[str] = (),
                           platform: str = "") -> AsyncIterator[dict[str, Any]]:
        ref: Reference | None = None
        if repo:
            ref = parse_normalized_named(repo)
            if ref.digest:
                raise InvalidParameter("cannot import digest reference")
            if tag:
                validate_tag(tag)
                ref = ref.with_tag(tag)
            ref = ref.with_default_tag()
        os_name, arch, variant = "linux", go_arch(), ""
        if platform:
            parts = platform.split("/")
            os_name = parts[0] or "linux"
            arch = parts[1] if len(parts) > 1 else arch
            variant = parts[2] if len(parts) > 2 else ""
            if os_name != "linux":
                raise InvalidParameter(f"operating system is not supported: {os_name}")
        config = apply_changes({}, [c for c in changes if c])
        path = await self._spool(chunks, "import")
        try:
            async with self._lock:
                rec = await run_in_thread(
                    self._import_sync, path, ref, message or "Imported from -", config,
                    os_name, arch, variant)
        finally:
            path.unlink(missing_ok=True)
        events: list[Event] = [("import", rec.id, self._attrs(rec, rec.id))]
        if ref is not None:
            events.append(("tag", rec.id, self._attrs(rec, ref.familiar())))
        self._emit_all(events)
        yield {"status": rec.id}

    def _import_sync(self, path: Path, ref: Reference | None, message: str,
                     config: dict[str, Any], os_name: str, arch: str, variant: str,
                     cancel: CancelToken) -> ImageRecord:
        st = self.store
        tmp = st.new_temp("blob")
        try:
            with open(path, "rb") as raw, open(tmp, "wb") as out:
                try:
                    diff_id, _ = fsutil.copy_hashing(open_compressed(raw), out, cancel)
                except (EOFError, zlib.error, lzma.LZMAError, OSError) as e:
                    if isinstance(e, OSError) and e.errno is not None:
                        raise          # the host's failure, not the data's
                    raise invalid_layer_tar(e) from e
                out.flush()
                os.fsync(out.fileno())
            chain = diff_id
            try:
                st.add_layer(tmp, diff_id, chain, "", self._privileged_layers, cancel)
                cancel.check()
                created = now_rfc3339()
                cfg: dict[str, Any] = {"architecture": arch, "comment": message,
                                       "config": config, "created": created}
                if variant:
                    cfg["variant"] = variant
                cfg.update({"history": [{"created": created, "comment": message}],
                            "os": os_name,
                            "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
                rec, _new = st.add_image(json.dumps(cfg, separators=(",", ":")).encode())
            except BaseException:
                st.gc_layers()
                raise
        finally:
            tmp.unlink(missing_ok=True)
        if ref is not None:
            st.set_ref(ref, rec.id)
        return rec

    # -- commit --------------------------------------------------------------------

    async def commit_layer(self, parent_id: str, layer: Iterator[bytes] | None,
                           child: dict[str, Any]) -> str:
        """A new image: the layer tar stream `layer` on top of `parent_id`.

        `child` carries config, container, container_config, author, comment
        and created_by; the image config is built as moby's NewChildImage (an
        empty layer is recorded as an empty_layer history entry only).
        The generator is consumed in a worker thread.  No layer (None) is an
        empty one; no parent ("") is FROM scratch, whose os and architecture
        `child["base"]` may give."""
        async with self._lock:
            rec = await run_in_thread(self._commit_sync, parent_id, layer, child)
        return rec.id

    def _commit_sync(self, parent_id: str, layer: Iterator[bytes] | None,
                     child: dict[str, Any], cancel: CancelToken) -> ImageRecord:
        st = self.store
        parent = st.images.get(parent_id) if parent_id else None
        if parent_id and parent is None:
            raise NotFound(f"No such image: {parent_id}")
        pcfg = (json.loads(parent.config_bytes) if parent is not None
                else dict(child.get("base") or {"architecture": go_arch(), "os": "linux"}))
        tmp = st.new_temp("commit")
        try:
            digest = hashlib.sha256()
            if layer is not None:
                with open(tmp, "wb") as out:
                    for chunk in layer:
                        cancel.check()
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            diff_id = "sha256:" + digest.hexdigest()
            empty = layer is None or diff_id == EMPTY_TAR_DIFF_ID
            diff_ids = list(parent.diff_ids) if parent is not None else []
            try:
                if not empty:
                    diff_ids.append(diff_id)
                    chains = chain_ids(diff_ids)
                    st.add_layer(tmp, diff_id, chains[-1],
                                 chains[-2] if len(chains) > 1 else "",
                                 self._privileged_layers, cancel)
                cancel.check()
                rec, _new = st.add_image(
                    _child_config(pcfg, child, diff_ids, empty), parent=parent_id)
            except BaseException:
                st.gc_layers()
                raise
        finally:
            tmp.unlink(missing_ok=True)
            close = getattr(layer, "close", None)
            if close is not None:
                close()                 # a generator stopped early releases its fds
        return rec

    async def add_config(self, config: dict[str, Any], parent: str = "") -> str:
        """An image from a config whose layers are all here (a build's cache
        image made from another image's history); its id."""
        data = json.dumps(config, separators=(",", ":")).encode()
        async with self._lock:
            rec, _new = await asyncio.to_thread(self.store.add_image, data, parent)
        return rec.id

    # -- tag -----------------------------------------------------------------------

    async def tag(self, source: str, repo: str, tag: str = "") -> str:
        """Tag an image; returns the familiar new reference."""
        rec = self.get(source)
        ref = parse_normalized_named(repo)
        if ref.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if tag:
            validate_tag(tag)
            ref = ref.with_tag(tag)
        ref = ref.with_default_tag()
        async with self._lock:
            await asyncio.to_thread(self.store.set_ref, ref, rec.id)
        self._emit_all([("tag", rec.id, self._attrs(rec, ref.familiar()))])
        return ref.familiar()

    # -- remove / prune ------------------------------------------------------------

    async def remove(self, name: str, force: bool = False, noprune: bool = False
                     ) -> list[dict[str, str]]:
        async with self._lock:
            remover = Remover(self.store, self._containers_using)
            records = await asyncio.to_thread(remover.delete, name, force, not noprune)
        self._emit_all(remover.events)
        return records

    async def prune(self, filters: flt.Filters | None = None) -> dict[str, Any]:
        filters = filters or {}
        flt.check_keys(filters, flt.PRUNE_KEYS)
        dangling_only = flt.get_bool(filters, "dangling", True)
        until = [flt.parse_timestamp(v) for v in filters.get("until", [])]
        async with self._lock:
            remover = Remover(self.store, self._containers_using)
            report = await asyncio.to_thread(
                remover.prune, dangling_only, until,
                lambda rec: flt.labels_match(rec.labels, filters))
        self._emit_all(remover.events)
        self._emit_all([("prune", "", {"reclaimed": str(report["SpaceReclaimed"])})])
        return report

    # -- list / inspect / history ----------------------------------------------------

    async def list_images(self, all: bool = False, filters: flt.Filters | None = None,
                   digests: bool = False) -> list[dict[str, Any]]:
        filters = filters or {}
        flt.check_keys(filters, flt.LIST_KEYS)
        dangling: bool | None = None
        if "dangling" in filters:
            dangling = flt.get_bool(filters, "dangling", False)
        before = [flt.created_ts(self.get(v).created) for v in filters.get("before", [])]
        since = [flt.created_ts(self.get(v).created) for v in filters.get("since", [])]
        until = [flt.parse_timestamp(v) for v in filters.get("until", [])]
        patterns = filters.get("reference", [])
        out = []
        for rec in sorted(self.store.images.values(), key=lambda r: r.created, reverse=True):
            if rec.hidden:
                continue
            created = flt.created_ts(rec.created)
            if any(created >= b for b in before) or any(created <= s for s in since):
                continue
            if any(created >= u for u in until):
                continue
            if not flt.labels_match(rec.labels, filters):
                continue
            item = shapes.summary_shape(rec)
            if patterns:
                refs = [r for r in self.store.refs_of(rec.id)
                        if any(familiar_match(p, r) for p in patterns)]
                item["RepoTags"] = [r.familiar() for r in refs if not r.digest]
                item["RepoDigests"] = [r.familiar() for r in refs if r.digest]
                if not refs:
                    continue
            untagged = not item["RepoTags"] and not item["RepoDigests"]
            if untagged and not all and self.store.children(rec.id):
                continue               # intermediate image
            if dangling is True and item["RepoTags"]:
                continue
            if dangling is False and untagged:
                continue
            out.append(item)
        return out

    def _layer_dirs(self, rec: ImageRecord) -> list[Path]:
        return [self.store.layer_dir(c) for c in reversed(rec.chain_ids)]

    def inspect(self, name: str) -> dict[str, Any]:
        """Docker's ImageInspect; synchronous (in-memory) like get()."""
        rec = self.get(name)
        return shapes.inspect_shape(rec, self._layer_dirs(rec))

    async def history(self, name: str) -> list[dict[str, Any]]:
        rec = self.get(name)
        ancestors = [rec]
        while ancestors[-1].parent and ancestors[-1].parent in self.store.images:
            ancestors.append(self.store.images[ancestors[-1].parent])
        sizes = [self.store.layer_sizes.get(c, 0) for c in rec.chain_ids]
        return shapes.history_shape(rec, sizes, ancestors)

    # -- the embedded default image ------------------------------------------------------

    async def ensure_default_busybox(self) -> str | None:
        """Create busybox:latest from the host binary unless a busybox exists."""
        if any(parse_normalized_named(r).name == "docker.io/library/busybox"
               for r in self.store.refs):
            return None
        if not busybox.BUSYBOX_PATH.exists():
            log.info("no %s: no default busybox image", busybox.BUSYBOX_PATH)
            return None
        async with self._lock:
            rec = await asyncio.to_thread(self._busybox_sync)
        return rec.id

    def _busybox_sync(self) -> ImageRecord:
        st = self.store
        cache_path = st.root / "busybox-cache.json"
        stat = busybox.BUSYBOX_PATH.stat()
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cache = fsutil.read_json(cache_path, {}) or {}
        rec: ImageRecord | None = None
        if cache.get("key") == key and st.has_layer(cache.get("diff_id", "")):
            rec, _ = st.add_image(cache["config"].encode())
        if rec is None:
            tmp = st.new_temp("busybox")
            try:
                diff_id = busybox.build_busybox_layer(tmp)
                st.add_layer(tmp, diff_id, diff_id, "", self._privileged_layers)
            finally:
                tmp.unlink(missing_ok=True)
            cfg = busybox.busybox_config(diff_id)
            rec, _ = st.add_image(cfg)
            fsutil.atomic_write_json(cache_path, {"key": key, "diff_id": diff_id,
                                                  "config": cfg.decode()})
        st.set_ref(parse_normalized_named("busybox:latest"), rec.id)
        return rec


def _child_config(parent: dict[str, Any], child: dict[str, Any], diff_ids: list[str],
                  empty: bool) -> bytes:
    """moby's NewChildImage: the parent's history plus one entry, new rootfs."""
    created = now_rfc3339()
    hist: dict[str, Any] = {"created": created}
    if child.get("author"):
        hist["author"] = child["author"]
    hist["created_by"] = child.get("created_by", "")
    if child.get("comment"):
        hist["comment"] = child["comment"]
    if empty:
        hist["empty_layer"] = True
    cfg: dict[str, Any] = {"architecture": parent.get("architecture", go_arch())}
    if child.get("author"):
        cfg["author"] = child["author"]
    cfg.update({"config": child.get("config") or {}, "container": child.get("container", ""),
                "container_config": child.get("container_config") or {},
                "created": created, "docker_version": "dockyard"})
    if parent.get("variant"):
        cfg["variant"] = parent["variant"]
    cfg["history"] = [*(parent.get("history") or []), hist]
    cfg["os"] = parent.get("os", "linux")
    for k in ("os.version", "os.features"):
        if parent.get(k):
            cfg[k] = parent[k]
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return json.dumps(cfg, separators=(",", ":")).encode()
