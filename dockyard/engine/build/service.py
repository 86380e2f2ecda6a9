"""`BuildService`: `POST /build` and `POST /build/prune` (the build backend).

A build: check the options (dockerd's texts), take the context from the
request body into the build's own directory (`<data-root>/builder/builds/
<id>`), find and parse the Dockerfile (`dockerfile` may name one in a
subdirectory or, as an absolute path, below the context's root; `../x`
is outside and refused; a missing default `Dockerfile` falls back to
`dockerfile`), apply .dockerignore, then run the builder in a task of its
own whose records the client streams.  A client that leaves cancels that
task; its step containers are removed, its mounts and its directory go.
With `q` the records are held back and only the image id is sent (all
of them, then the error, when the build fails).

The build cache is the steps' images: `prune` removes those no tag,
container or kept image needs (all of the cache's keys with `all`), and
`cache_usage` reports them for `docker system df`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dockyard.backend import BuildOptions, BuildPruneOptions
from dockyard.build import instructions as ins
from dockyard.build.context import inside
from dockyard.build.driver.builder import Builder, BuildRequest, StepFailed
from dockyard.build.driver.receive import Context, index_spool, spool_body
from dockyard.build.driver.trees import CacheIndex
from dockyard.build.ignore import parse_ignore_file
from dockyard.engine.build.steps import EngineSteps
from dockyard.engine.events import EventBus
from dockyard.errors import (
    Conflict,
    DockyardError,
    InvalidParameter,
    NotFound,
    NotImplementedByEngine,
)
from dockyard.images import filters as flt
from dockyard.images.archive import go_arch
from dockyard.images.reference import parse_normalized_named
from dockyard.util.cancel import run_in_thread
from dockyard.util.fstree import clear_dir, remove_quietly

log = logging.getLogger("dockyard.build")

_PLATFORM = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+(/[a-z0-9_-]+)?)?$")
_OS = {"linux"}
_ARCHES = {"amd64", "x86_64", "x86-64", "arm64", "aarch64", "arm", "386", "ppc64le", "s390x",
           "riscv64", "mips64le"}


def check_platform_text(text: str) -> str:
    """containerd's platforms.Parse, enough for its error text: `os[/arch[/variant]]`."""
    low = text.lower()
    parts = low.split("/")
    if not _PLATFORM.match(low) or (parts[0] not in _OS and parts[0] not in _ARCHES):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: '
                               "invalid argument")
    if parts[0] != "linux":
        if parts[0] in _ARCHES and len(parts) == 1:
            return f"linux/{parts[0]}"
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: '
                               "invalid argument")
    return low


def host_config(opts: BuildOptions) -> dict[str, Any]:
    """moby's hostConfigFromOptions: what every step container gets."""
    mode = opts.network_mode
    if mode in ("", "default"):
        mode = "bridge"
    return {"CgroupParent": opts.cgroup_parent, "CpuShares": opts.cpu_shares,
            "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
            "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems,
            "Memory": opts.memory, "MemorySwap": opts.memory_swap,
            "Ulimits": opts.ulimits or None, "ShmSize": opts.shm_size,
            "NetworkMode": mode, "LogConfig": {"Type": "none", "Config": {}},
            "ExtraHosts": opts.extra_hosts or None}


def check_options(opts: BuildOptions) -> list[str]:
    """dockerd's checks before a build starts; the tags to set."""
    if opts.security_opt:
        raise InvalidParameter("security options are not supported on linux")
    if opts.isolation not in ("", "default"):
        raise InvalidParameter(f'unsupported isolation: "{opts.isolation}"')
    if opts.squash:
        raise InvalidParameter("squash is only supported with experimental mode")
    if opts.version not in ("1", "2"):
        raise InvalidParameter(f'invalid version "{opts.version}"')
    if opts.version == "2":
        raise NotImplementedByEngine(
            "BuildKit (builder version 2) is not available on this daemon: use the classic "
            "builder (DOCKER_BUILDKIT=0, or version=1 in the API)")
    if opts.remote == "client-session":
        raise InvalidParameter("experimental session with v1 builder is no longer supported, "
                               "use builder version v2 (BuildKit) instead")
    if opts.remote:
        raise NotImplementedByEngine(
            "remote build contexts (a git repository or URL in 'remote') are not supported "
            "by this daemon: send the context as the request body")
    if opts.outputs:
        raise InvalidParameter("outputs are not supported by the classic builder")
    tags: list[str] = []
    for t in opts.tags:
        if not t:
            continue
        ref = parse_normalized_named(t)
        if ref.digest:
            raise InvalidParameter("build tag cannot contain a digest")
        full = str(ref.with_default_tag())
        if full not in tags:
            tags.append(full)
    return tags


def find_dockerfile(context: Context, name: str) -> tuple[str, bytes]:
    """The Dockerfile's path in the context and its bytes (dockerd's openAt)."""
    if context.dockerfile_only is not None:
        return name or "Dockerfile", context.dockerfile_only
    wanted = name or "Dockerfile"
    rel = inside(wanted)
    if rel is None:
        raise InvalidParameter(f"forbidden path outside the build context: {wanted} ()")
    tree = context.tree
    entry = tree.lookup(tree.resolve(rel))
    if (entry is None or entry.kind != "file") and wanted == "Dockerfile":
        alt = tree.lookup(tree.resolve("dockerfile"))
        if alt is not None and alt.kind == "file":
            return "dockerfile", context.read(alt)
    if entry is None or entry.kind != "file":
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {wanted}")
    return wanted, context.read(entry)


class BuildService:
    def __init__(self, root: Path, steps: EngineSteps, events: EventBus,
                 containers_using: Any) -> None:
        self.root = root
        self.builds_dir = root / "builds"
        self.steps = steps
        self.events = events
        self.containers_using = containers_using
        self.cache = CacheIndex(root / "cache.json")
        self.platform = f"linux/{go_arch()}"
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """A crash's leftovers (contexts, mounted layers) go."""
        for d in (self.root, self.builds_dir, self.steps.layers_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self.builds_dir, self.steps.layers_dir):
            left = clear_dir(d, unmount=True)
            if left:
                log.warning("build: could not remove %s from %s", left, d)

    # ------------------------------------------------------------ build
    async def build(self, opts: BuildOptions, chunks: AsyncIterator[bytes]
                    ) -> AsyncIterator[dict[str, Any]]:
        tags = check_options(opts)
        platform = check_platform_text(opts.platform) if opts.platform else ""
        workdir = self.builds_dir / secrets.token_hex(8)
        await asyncio.to_thread(workdir.mkdir, 0o700)
        builder: Builder | None = None
        job: asyncio.Task[str] | None = None
        try:
            spool = workdir / "context.tar"
            size = await spool_body(chunks, spool)
            context = await run_in_thread(lambda _t: index_spool(spool, size))
            name, text = await run_in_thread(lambda _t: find_dockerfile(context, opts.dockerfile))
            dockerfile = ins.parse_dockerfile(text, name)
            await run_in_thread(lambda _t: self._ignore(context, name))
            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            req = BuildRequest(
                dockerfile=dockerfile, context=context, build_args=dict(opts.build_args),
                labels=dict(opts.labels), target=opts.target, no_cache=opts.no_cache,
                pull=opts.pull, remove=opts.remove, force_remove=opts.force_remove,
                cache_from=list(opts.cache_from), host_config=host_config(opts),
                platform=platform, cache_platform=platform or self.platform,
                auth=dict(opts.auth_configs), aux=opts.api_version >= (1, 30))
            builder = Builder(self.steps, req, queue.put_nowait, workdir, self.cache)
            job = asyncio.ensure_future(self._run(builder, tags, queue))
            held: list[dict[str, Any]] = []
            while True:
                item = await queue.get()
                if item is None:
                    break
                if opts.quiet and "error" not in item:
                    held.append(item)
                    continue
                if opts.quiet and "error" in item:
                    for h in held:
                        yield h
                yield item
            image_id = await job
            if opts.quiet and image_id:
                yield {"stream": image_id + "\n"}
        finally:
            if job is not None and not job.done():
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job
            if builder is not None:
                await asyncio.shield(self._finish(builder))
            await asyncio.to_thread(remove_quietly, workdir, "build directory", unmount=True)

    async def _finish(self, builder: Builder) -> None:
        await builder.cleanup()
        await asyncio.to_thread(self.cache.save)

    def _ignore(self, context: Context, dockerfile: str) -> None:
        tree = context.tree
        entry = tree.lookup(".dockerignore")
        if entry is None or entry.kind != "file":
            return
        matcher = parse_ignore_file(context.read(entry).decode("utf-8", "replace"))
        tree.apply_ignore(matcher)

    async def _run(self, builder: Builder, tags: list[str],
                   queue: asyncio.Queue[dict[str, Any] | None]) -> str:
        """The build in its own task; its end (or error record) ends the queue."""
        try:
            image_id = await builder.run()
            builder.out(f"Successfully built {image_id.split(':', 1)[-1][:12]}\n")
            for tag in tags:
                await self.steps.tag(image_id, tag)
                builder.out(f"Successfully tagged {parse_normalized_named(tag).familiar()}\n")
            return image_id
        except StepFailed as e:
            queue.put_nowait({"errorDetail": {"code": e.code, "message": e.message},
                              "error": e.message})
            return ""
        except DockyardError as e:
            if builder.emitted:
                queue.put_nowait({"errorDetail": {"message": e.message}, "error": e.message})
                return ""
            raise
        except (OSError, ValueError) as e:
            log.exception("build failed")
            if builder.emitted:
                queue.put_nowait({"errorDetail": {"message": str(e)}, "error": str(e)})
                return ""
            raise
        finally:
            queue.put_nowait(None)

    # ------------------------------------------------------------ cache
    def _removable(self) -> dict[str, dict[str, Any]]:
        out = {}
        for image_id, entry in self.cache.images().items():
            rec = self.steps.images.store.images.get(image_id)
            if rec is None or rec.hidden:
                continue
            out[image_id] = entry
        return out

    def cache_usage(self) -> list[dict[str, Any]]:
        """The build cache as `docker system df` shows it (BuildCache records)."""
        store = self.steps.images.store
        records = []
        for image_id, entry in self._removable().items():
            rec = store.images[image_id]
            own = [c for c in rec.chain_ids if not (rec.parent and rec.parent in store.images
                                                    and c in store.images[rec.parent].chain_ids)]
            size = sum(store.layer_sizes.get(c, 0) for c in own)
            hist = (rec.config.get("history") or [{}])[-1]
            records.append({
                "ID": image_id.split(":", 1)[-1][:25], "Parent": rec.parent or None,
                "Parents": [rec.parent] if rec.parent else None, "Type": "regular",
                "Description": hist.get("created_by", ""),
                "InUse": bool(self.containers_using(image_id)),
                "Shared": bool(store.refs_of(image_id) or store.children(image_id)),
                "Size": size, "CreatedAt": _rfc3339(entry.get("created", 0)),
                "LastUsedAt": _rfc3339(entry.get("used", 0)), "UsageCount": 1})
        return records

    def cache_size(self) -> int:
        """Bytes the build cache holds (the Build Cache line of `docker system df`)."""
        return sum(r["Size"] for r in self.cache_usage())

    async def prune(self, opts: BuildPruneOptions) -> dict[str, Any]:
        for key in opts.filters:
            if key != "until":
                raise InvalidParameter(f"invalid filter '{key}'")
        until = [flt.parse_timestamp(v) for v in opts.filters.get("until", [])]
        async with self._lock:
            store = self.steps.images.store
            before = dict(store.layer_sizes)
            deleted: list[str] = []
            entries = self._removable()
            order = sorted(entries, key=lambda i: entries[i].get("used", 0))
            kept_size = 0
            if opts.keep_storage:
                for image_id in reversed(order):
                    kept_size += sum(store.layer_sizes.get(c, 0)
                                     for c in store.images[image_id].chain_ids[-1:])
                    if kept_size <= opts.keep_storage:
                        entries.pop(image_id)
            changed = True
            while changed:
                changed = False
                for image_id, entry in list(entries.items()):
                    if image_id not in store.images or any(
                            entry.get("used", 0) >= u for u in until):
                        entries.pop(image_id, None)
                        continue
                    if (store.refs_of(image_id) or store.children(image_id)
                            or self.containers_using(image_id)):
                        continue
                    try:
                        await self.steps.images.remove(image_id, noprune=True)
                    except (Conflict, NotFound):
                        continue
                    deleted.append(image_id)
                    entries.pop(image_id)
                    changed = True
            gone = {i for i in self.cache.images() if i not in store.images}
            if opts.all:
                gone |= set(self.cache.images())
            self.cache.forget(gone)
            await asyncio.to_thread(self.cache.save)
            reclaimed = sum(size for chain, size in before.items()
                            if chain not in store.layer_sizes)
        self.events.emit("builder", "prune", "", {"reclaimed": str(reclaimed)})
        return {"CachesDeleted": [i.split(":", 1)[-1] for i in deleted] or None,
                "SpaceReclaimed": reclaimed}


def _rfc3339(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs or 0))
