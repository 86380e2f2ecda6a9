"""`ContainerFiles`: a container's filesystem as Docker operations: export,
diff, cp (stat, archive, extract) and commit.

Reads go through a mounted view of the root (views.py): the daemon's view,
so the container's bind mounts, the engine's /etc files and volumes are not
in it and export never leaks their host content.  Diff and commit read the
upper dir directly (diff.py, commit.py).  Tar work runs in threads; streams
are produced a chunk at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Generator
from typing import Any

from dockyard.backend import CommitOptions
from dockyard.engine.containers.initlayer import init_lower
from dockyard.engine.containers.lifecycle import Lifecycle
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.fs import paths
from dockyard.engine.fs.commit import build_commit_config, commit_tar, parse_repo_tag
from dockyard.engine.fs.diff import Skips, compute_changes, mount_points
from dockyard.engine.fs.tar import (
    END_OF_ARCHIVE,
    ExtractOptions,
    OwnerNames,
    TarStreamer,
    extract,
)
from dockyard.engine.fs.views import (
    VIEW_PREFIX,
    View,
    ViewStream,
    bind_view,
    mount_view,
    unmount_view,
)
from dockyard.engine.volumes import fsview
from dockyard.engine.volumes.service import VolumeService
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound, SystemError_
from dockyard.images.service import ImageService
from dockyard.util.fstree import TreeChanged, open_regular
from dockyard.util.mount import is_mountpoint

log = logging.getLogger("dockyard.fs")

# the files of Docker's init layer (daemon/initlayer): empty, mode 0755, over the
# image; the runtime makes its mount targets 0700, export shows Docker's
INIT_LAYER_FILES = frozenset({"/.dockerenv", "/etc/resolv.conf", "/etc/hosts",
                              "/etc/hostname", "/dev/console"})
PIPE_CHUNK = 1 << 20
# in a container's directory while a commit holds it paused
COMMIT_PAUSE_MARK = "commit-paused"


class ContainerFiles:
    """Stateless apart from the views it mounts for the length of a request."""

    def __init__(self, store: ContainerStore, images: ImageService, lifecycle: Lifecycle,
                 volumes: VolumeService) -> None:
        self.store = store
        self.images = images
        self.lifecycle = lifecycle
        self.volumes = volumes

    # ------------------------------------------------------------ views
    def _running_view(self, c: Container) -> View | None:
        merged = self.store.rootfs(c)
        if c.state.running and is_mountpoint(str(merged)):
            return View(merged, temporary=False)
        return None

    async def _open_view(self, c: Container, write: bool, mounts: bool = False) -> View:
        """`mounts`: with the container's volumes and binds in it (cp)."""
        binds = fsview.view_binds(c.mounts, self.volumes) if mounts else []
        view = self._running_view(c)
        if view is not None and not binds:
            return view
        d = self.store.dir(c)
        target = d / f"{VIEW_PREFIX}{secrets.token_hex(6)}"
        if binds and view is None and not write:
            await self._make_mount_targets(c, binds)
        try:
            if view is not None:
                await asyncio.to_thread(bind_view, view.root, target)
            else:
                # as dockerd's: the image, its init layer, the container's own
                lowers = [*await asyncio.to_thread(init_lower, d, True),
                          *self.images.lower_dirs(c.image_id)]
                await asyncio.to_thread(mount_view, target, lowers, d / "upper",
                                        d / "work" if write else None)
        except OSError as e:
            raise SystemError_(f"mounting the filesystem of container {c.id[:12]}: "
                               f"{e.strerror or e}") from e
        view = View(target, temporary=True, mounts=bool(binds))
        if binds:
            try:
                if write:
                    await asyncio.to_thread(fsview.make_targets, target, binds)
                await asyncio.to_thread(fsview.bind_into, target, binds)
            except BaseException:
                await self._close_view(view)
                raise
        return view

    async def _make_mount_targets(self, c: Container, binds: list[fsview.ViewBind]) -> None:
        """A stopped container read with its volumes needs their mount
        targets in its root: made once through a short writable view."""
        async with self.store.lock(c):
            if self._running_view(c) is not None:
                return
            d = self.store.dir(c)
            target = d / f"{VIEW_PREFIX}{secrets.token_hex(6)}"
            lowers = self.images.lower_dirs(c.image_id)

            def work() -> None:
                mount_view(target, [*init_lower(d, True), *lowers], d / "upper", d / "work")
                try:
                    fsview.make_targets(target, binds)
                finally:
                    unmount_view(target)

            try:
                await asyncio.to_thread(work)
            except OSError as e:
                raise SystemError_(f"mounting the filesystem of container {c.id[:12]}: "
                                   f"{e.strerror or e}") from e

    async def _close_view(self, view: View) -> None:
        if view.temporary:
            await asyncio.to_thread(unmount_view, view.root)

    def _check_usable(self, c: Container) -> None:
        if c.state.status == "dead":
            raise Conflict(f"container {c.id} is dead")

    # ------------------------------------------------------------ export
    async def export(self, ref: str) -> AsyncIterator[bytes]:
        c = self.store.get(ref)
        self._check_usable(c)
        view = await self._open_view(c, write=False)

        def tar() -> Generator[bytes, None, None]:
            fd = view.open_root()
            try:
                streamer = TarStreamer(init_files=INIT_LAYER_FILES, names=_owner_names(fd))
                yield from streamer.dir_tree(fd, "", "/", include_self=False)
                yield END_OF_ARCHIVE
            finally:
                os.close(fd)

        self.store.emit(c, "export")
        return self._stream_then_close(tar(), view)

    def _stream_then_close(self, gen: Generator[bytes, None, None], view: View) -> ViewStream:
        return ViewStream(gen, view, self._close_view)

    # ------------------------------------------------------------ diff
    async def changes(self, ref: str) -> list[dict[str, Any]]:
        c = self.store.get(ref)
        upper = self.store.dir(c) / "upper"
        lowers = [*init_lower(self.store.dir(c)), *self.images.lower_dirs(c.image_id)]
        skips = Skips.of(mount_points(c.config, c.host_config) | _mount_dests(c))
        for _ in range(3):
            try:
                return await asyncio.to_thread(compute_changes, upper, lowers, skips)
            except TreeChanged:
                continue                # a running container moved what was compared
        raise Conflict(f"the filesystem of container {c.id[:12]} kept changing while it "
                       "was compared; try again")

    # ------------------------------------------------------------ cp: stat and read
    def _not_found(self, path: str, ref: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {ref}")

    @staticmethod
    def _check_path(path: str) -> None:
        """A NUL cannot be in a path: the kernel's EINVAL, as dockerd reports it."""
        if "\0" in path:
            raise InvalidParameter(f"lstat {paths.container_abs_path(path)}: invalid argument")

    async def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        self._check_path(path)
        c = self.store.get(ref)
        view = await self._open_view(c, write=False, mounts=True)
        try:
            return await asyncio.to_thread(self._stat_sync, view, path, ref)
        finally:
            await self._close_view(view)

    def _stat_sync(self, view: View, path: str, ref: str) -> dict[str, Any]:
        fd = view.open_root()
        try:
            return paths.path_stat(fd, path)
        except FileNotFoundError:
            raise self._not_found(path, ref) from None
        except NotADirectoryError:
            raise SystemError_(f"lstat {paths.container_abs_path(path)}: not a directory"
                               ) from None
        except OSError as e:
            raise self._path_error(e, path, ref) from None
        finally:
            os.close(fd)

    def _path_error(self, e: OSError, path: str, ref: str) -> DockyardError:
        """What the container's own path caused (missing, too many symlinks, or
        changed while we looked): the client's 4xx, never a 500."""
        if e.errno == errno.ENOENT:
            return self._not_found(path, ref)
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ESTALE, errno.ENAMETOOLONG):
            return InvalidParameter(f"{paths.container_abs_path(path)}: "
                                    f"{(e.strerror or str(e)).lower()}")
        return SystemError_(f"lstat {path}: {e.strerror or e}")

    def _open_parent(self, view: View, src_dir: str) -> int:
        """An fd of the directory holding what is copied.  A container process
        may swap a directory on the way for a symlink meanwhile: the path is
        then resolved again (inside the root, as a new request would)."""
        fd = view.open_root()
        try:
            for attempt in range(3):
                comps = paths.resolve(fd, src_dir, True)
                try:
                    return paths.open_dir(fd, comps)
                except OSError as e:
                    if attempt == 2 or e.errno not in (errno.ENOENT, errno.ELOOP,
                                                       errno.ENOTDIR):
                        raise
            raise AssertionError("unreachable")
        finally:
            os.close(fd)

    async def archive_path(self, ref: str, path: str
                           ) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        self._check_path(path)
        c = self.store.get(ref)
        view = await self._open_view(c, write=False, mounts=True)
        try:
            st = await asyncio.to_thread(self._stat_sync, view, path, ref)
            abs_path = paths.container_abs_path(path)
            src_dir, base = paths.split_dir_entry(abs_path)
            try:
                dir_fd = await asyncio.to_thread(self._open_parent, view, src_dir)
            except OSError as e:
                raise self._path_error(e, path, ref) from None
        except BaseException:
            await self._close_view(view)
            raise

        def tar() -> Generator[bytes, None, None]:
            try:
                root_fd = view.open_root()
                try:
                    names = _owner_names(root_fd)
                finally:
                    os.close(root_fd)
                # with volumes bound in, their content is part of the copy
                streamer = TarStreamer(names=names, one_mount=not view.mounts)
                if base == ".":
                    # "dir/." copies the directory's content: "./" then "./name"
                    yield from streamer.dir_tree(dir_fd, ".", src_dir)
                elif base == "/":
                    yield from streamer.dir_tree(dir_fd, "/", "/", include_self=False)
                else:
                    yield from streamer.entry_tree(dir_fd, base, base,
                                                   src_dir.rstrip("/") + "/" + base)
                yield END_OF_ARCHIVE
            finally:
                os.close(dir_fd)

        self.store.emit(c, "archive-path")
        return st, self._stream_then_close(tar(), view)

    # ------------------------------------------------------------ cp: write
    async def extract_to_dir(self, ref: str, path: str, chunks: AsyncIterator[bytes],
                             copy_uid_gid: bool, no_overwrite_dir_non_dir: bool) -> None:
        self._check_path(path)
        c = self.store.get(ref)
        fsview.check_writable(c.mounts, path, bool(c.host_config.get("ReadonlyRootfs")))
        async with contextlib.AsyncExitStack() as stack:
            if self._running_view(c) is None:
                # a start waits for the write; the write waits for a start
                await stack.enter_async_context(self.store.lock(c))
            view = await self._open_view(c, write=True, mounts=True)
            stack.push_async_callback(self._close_view, view)
            fd = view.open_root()
            stack.callback(os.close, fd)
            dest = await asyncio.to_thread(self._extraction_point, fd, path, ref)
            owner = await asyncio.to_thread(self._copy_owner, fd, c) if copy_uid_gid else None
            opts = ExtractOptions(no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                  chown=owner)
            await _extract_stream(fd, dest, chunks, opts)
        self.store.emit(c, "extract-to-dir")

    def _extraction_point(self, root_fd: int, path: str, ref: str) -> list[str]:
        # unlike stat, the last element is followed: `cp x c:/link-to-dir`
        try:
            comps = paths.resolve(root_fd, paths.container_abs_path(path), True)
            st = (os.fstat(root_fd) if not comps
                  else paths.lstat_at(root_fd, comps[:-1], comps[-1]))
        except OSError as e:
            raise self._path_error(e, path, ref) from None
        if st is None:
            raise self._not_found(path, ref)
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParameter("extraction point is not a directory")
        return comps

    def _copy_owner(self, root_fd: int, c: Container) -> tuple[int, int] | None:
        """copyUIDGID: moby chowns to the container's user (none set: as archived)."""
        user = str(c.config.get("User") or "")
        if not user:
            return None
        name, _, group = user.partition(":")
        passwd = _read_in_root(root_fd, "/etc/passwd")
        groups = _read_in_root(root_fd, "/etc/group")
        uid = gid = None
        for line in passwd.splitlines():
            f = line.split(":")
            if len(f) >= 4 and (f[0] == name or f[2] == name):
                uid, gid = int(f[2]), int(f[3])
                break
        if uid is None:
            if not name.isdigit():
                raise InvalidParameter(f"unable to find user {name}: no matching entries "
                                       "in passwd file")
            uid, gid = int(name), 0 if gid is None else gid
        if group:
            for line in groups.splitlines():
                f = line.split(":")
                if len(f) >= 3 and (f[0] == group or f[2] == group):
                    gid = int(f[2])
                    break
            else:
                if not group.isdigit():
                    raise InvalidParameter(f"unable to find group {group}: no matching "
                                           "entries in group file")
                gid = int(group)
        return uid, gid if gid is not None else 0

    # ------------------------------------------------------------ commit
    async def commit(self, opts: CommitOptions) -> str:
        target = parse_repo_tag(opts.repo, opts.tag)
        c = self.store.get(opts.container)
        if c.state.status == "dead":
            raise Conflict(f"You cannot commit container {c.id} which is Dead")
        if c.state.removal:
            raise Conflict(f"You cannot commit container {c.id} which is being removed")
        new_config = build_commit_config(opts.config, c.config, opts.changes)
        paused_here = False
        mark = self.store.dir(c) / COMMIT_PAUSE_MARK
        if opts.pause and c.state.status == "running":
            # written first: a daemon killed during the commit unpauses at start
            await asyncio.to_thread(mark.touch, 0o600)
            try:
                await self.lifecycle.pause(c.id)
                paused_here = True
            except DockyardError as e:
                log.info("commit: could not pause %s: %s", c.id[:12], e.message)
            finally:
                if not paused_here:
                    await asyncio.to_thread(mark.unlink, True)
        try:
            upper = self.store.dir(c) / "upper"
            skips = Skips.of(mount_points(c.config, c.host_config) | _mount_dests(c))
            child = {"config": new_config, "container": c.id,
                     "container_config": c.config, "author": opts.author,
                     "comment": opts.comment,
                     "created_by": " ".join(c.config.get("Cmd") or [])}
            lowers = self.images.lower_dirs(c.image_id)
            try:
                image_id = await self.images.commit_layer(
                    c.image_id, commit_tar(upper, lowers, skips), child)
            except TreeChanged:
                raise Conflict(f"the filesystem of container {c.id[:12]} changed while it "
                               "was committed (commit with pause to avoid it)") from None
        finally:
            if paused_here:
                with contextlib.suppress(DockyardError):
                    await self.lifecycle.unpause(c.id)
                await asyncio.to_thread(mark.unlink, True)
        image_ref = ""
        if target is not None:
            image_ref = await self.images.tag(image_id, *target)
        self.store.emit(c, "commit", comment=opts.comment, imageID=image_id,
                        imageRef=image_ref)
        return image_id


    async def resume_interrupted_commits(self) -> None:
        """At start: containers a commit paused when the daemon died during it
        run again (a pause the user asked for has no mark and stays)."""
        for c in self.store:
            mark = self.store.dir(c) / COMMIT_PAUSE_MARK
            if not await asyncio.to_thread(mark.exists):
                continue
            if c.state.status == "paused":
                log.info("unpausing %s, paused by a commit the daemon did not finish",
                         c.id[:12])
                try:
                    await self.lifecycle.unpause(c.id)
                except DockyardError as e:
                    log.warning("unpausing %s: %s", c.id[:12], e.message)
            await asyncio.to_thread(mark.unlink, True)


def _mount_dests(c: Container) -> frozenset[str]:
    """Destinations of the container's volumes, binds and mounts (those of
    --volumes-from included): diff and commit leave them out."""
    return frozenset(str(m.get("Destination")) for m in c.mounts if m.get("Destination"))


def _owner_names(root_fd: int) -> OwnerNames:
    """The names archives give owners: the container's passwd and group."""
    return OwnerNames.parse(_read_in_root(root_fd, "/etc/passwd"),
                            _read_in_root(root_fd, "/etc/group"))


def _read_in_root(root_fd: int, path: str) -> str:
    try:
        comps = paths.resolve(root_fd, path, True)
        if not comps:
            return ""
        dfd = paths.open_dir(root_fd, comps[:-1])
    except OSError:
        return ""
    try:
        # a fifo or device node there is never opened for real
        fd = open_regular(dfd, comps[-1])
        if fd is None:
            return ""
        with os.fdopen(fd, "rb") as f:
            return f.read(4 << 20).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(dfd)


async def _extract_stream(root_fd: int, dest: list[str], chunks: AsyncIterator[bytes],
                          opts: ExtractOptions) -> None:
    """Feed the request body through a pipe to the extracting thread.

    The loop writes the pipe itself, without blocking: a thread hop for
    each of the body's pieces (the CLI sends 32 KiB ones) cost more than
    the extraction did."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    os.set_blocking(rfd, True)
    with contextlib.suppress(OSError):      # beyond pipe-max-size: the default will do
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_CHUNK)
    reader = os.fdopen(rfd, "rb", buffering=PIPE_CHUNK)
    job = asyncio.ensure_future(asyncio.to_thread(_extract_closing, root_fd, dest, reader, opts))
    writer_open = True
    try:
        async for chunk in chunks:
            if job.done():
                break               # extraction failed (or ended): stop feeding it
            try:
                await write_nonblocking(wfd, chunk)
            except BrokenPipeError:
                break
        os.close(wfd)
        writer_open = False
        await job
    finally:
        if writer_open:
            os.close(wfd)
        if not job.done():
            with contextlib.suppress(BaseException):
                await job


def _extract_closing(root_fd: int, dest: list[str], reader: Any, opts: ExtractOptions) -> None:
    try:
        extract(root_fd, dest, reader, opts)
        # tar stops reading at its end marker: drain so the writer never blocks
        while reader.read(PIPE_CHUNK):
            pass
    finally:
        reader.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def write_nonblocking(fd: int, data: bytes) -> None:
    """All of `data` to the non-blocking `fd` (a pipe), waiting in the loop
    while it is full; BrokenPipeError once its reader has gone."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_writer(fd, _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_writer(fd)


__all__ = ["ContainerFiles"]
