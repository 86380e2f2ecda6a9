"""Reading json-file logs back the way `docker logs` does.

Semantics from moby (`daemon/logs.go`, `loggerutils/logfile.go`,
`router/container/container_routes.go`):
- `tail` N counts records (lines of the files, 16 KiB pieces included) from
  the end across rotated files, before `since`/`until`/stream selection;
  None or negative = all, 0 = no history.
- `since`: records are skipped until the first one at or after it; after
  that it is not checked again (times are not sorted across streams).
- `until`: inclusive; the stream ends at the first record after it.
- `follow` is ignored when the container is not running; otherwise new
  records are streamed until the container stops (after a final pump) or
  the consumer closes/cancels the iterator.
- `timestamps`: payload prefixed by RFC3339 UTC with 9 fraction digits and
  a space (moby's RFC3339NanoFixed).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from dockyard.engine.logs.files import iter_lines_backward
from dockyard.engine.logs.format import (
    STREAM_IDS,
    LogParseError,
    decode_json_record,
)
from dockyard.engine.logs.pump import LogPump
from dockyard.errors import InvalidParameter
from dockyard.runtime.logs import parse_timestamp_ns
from dockyard.util.timefmt import rfc3339_nano, rfc3339_nano_fixed

READ_CHUNK = 1 << 20
FOLLOW_POLL = 0.1
INLINE_READ = 64 << 10   # at most this much is read without a worker thread


@dataclass
class _OpenFile:
    path: Path
    fd: int
    ino: tuple[int, int]
    start: int   # first byte to read
    end: int     # size when the read began (history stops there)


def _open(path: Path) -> _OpenFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    return _OpenFile(path, fd, (st.st_dev, st.st_ino), 0, st.st_size)


def _open_all(paths: list[Path]) -> list[_OpenFile]:
    # Holding descriptors pins the inodes: a rotation while we read history
    # renames files under us but cannot change what we read.
    files = []
    for p in paths:
        f = _open(p)
        if f is not None:
            files.append(f)
    return files


def _tail_start(files: list[_OpenFile], count: int) -> None:
    """Move the `start` of the files so that exactly the last `count`
    lines remain, scanning backwards block by block."""
    remaining = count
    for f in reversed(files):
        if remaining <= 0:
            f.start = f.end
            continue
        # Through /proc/self/fd: the pinned inode, even if the path rotated.
        for off, _line in iter_lines_backward(Path(f"/proc/self/fd/{f.fd}"), end=f.end):
            remaining -= 1
            if remaining == 0:
                f.start = off
                break


def _read_lines(fd: int, start: int, end: int | None) -> tuple[bytes, int]:
    """Complete lines from [start, end) (end None: to EOF), at most
    READ_CHUNK bytes plus one line, each with its newline; returns them and
    the next offset."""
    limit = READ_CHUNK if end is None else min(READ_CHUNK, end - start)
    if limit <= 0:
        return b"", start
    data = os.pread(fd, limit, start)
    cut = data.rfind(b"\n")
    while cut < 0 and len(data) == limit and (end is None or start + limit < end):
        # A single line longer than the chunk: read on until its end.
        more = os.pread(fd, READ_CHUNK, start + len(data))
        if not more:
            break
        if end is not None:
            more = more[:end - start - len(data)]
        data += more
        cut = data.rfind(b"\n")
        limit = len(data)
    if cut < 0:
        return b"", start
    return data[:cut + 1], start + cut + 1


# A record as our writer (and dockerd) writes plain text: no escapes at all.
_PLAIN_RECORD = re.compile(
    rb'\{"log":"([^"\\]*)(\\n)?","stream":"(stdout|stderr)","time":"([^"\\]*)"\}')
_STREAM_NAMES = {b"stdout": "stdout", b"stderr": "stderr"}
# The same from a line's start to its newline, nothing between them a
# newline: a block with as many matches as lines is all plain records.
_PLAIN_LINE = re.compile(
    rb'^\{"log":"([^"\\\n]*)(\\n)?","stream":"(stdout|stderr)","time":"[^"\\\n]*"\}\n',
    re.MULTILINE)
_OUT, _ERR = STREAM_IDS["stdout"], STREAM_IDS["stderr"]

Batch = list[tuple[int, bytes]]


@dataclass
class _Filter:
    stdout: bool
    stderr: bool
    since_ns: int | None
    until_ns: int | None
    timestamps: bool
    details: bool = False
    since_passed: bool = False
    ended: bool = False
    _time_raw: bytes = b""
    _time_ns: int = 0
    _prefix: bytes = b""

    def __post_init__(self) -> None:
        self.since_passed = self.since_ns is None

    def _time(self, raw: bytes) -> int:
        # consecutive records mostly share one time (one conmon read)
        if raw != self._time_raw:
            self._time_ns = parse_timestamp_ns(raw.decode("ascii", "replace"))
            self._time_raw = raw
            self._prefix = rfc3339_nano_fixed(self._time_ns).encode() + b" "
        return self._time_ns

    def apply(self, block: bytes, out: Batch) -> None:
        """The records of `block` (whole lines) that pass, appended to `out`."""
        if self.since_passed and self.until_ns is None and not self.timestamps \
                and not self.details and self._apply_plain(block, out):
            return
        want = {"stdout": self.stdout, "stderr": self.stderr}
        timed = self.until_ns is not None or self.timestamps
        for line in block[:-1].split(b"\n"):
            m = _PLAIN_RECORD.fullmatch(line)
            attrs = None
            if m is not None:
                name = _STREAM_NAMES[m.group(3)]
                payload = m.group(1) + b"\n" if m.group(2) else m.group(1)
                time_raw = m.group(4)
            else:
                rec = decode_json_record(line)
                if rec is None:
                    continue
                name, payload, attrs = rec.stream, rec.log, rec.attrs
                time_raw = rfc3339_nano(rec.time_ns).encode()
            try:
                if not self.since_passed:
                    if self.since_ns is not None and self._time(time_raw) < self.since_ns:
                        continue
                    self.since_passed = True
                if timed:
                    ns = self._time(time_raw)
                    if self.until_ns is not None and ns > self.until_ns:
                        self.ended = True
                        return
            except LogParseError:
                continue
            if not want[name]:
                continue
            if self.details:
                payload = details_prefix(attrs) + payload
            if self.timestamps:
                payload = self._prefix + payload
            out.append((STREAM_IDS[name], payload))


    def _apply_plain(self, block: bytes, out: Batch) -> bool:
        """The common case in bulk: every line a plain record and nothing
        to check per record but its stream.  False (and nothing added) if
        some line is not plain; then the records go one by one."""
        found = _PLAIN_LINE.findall(block)
        if len(found) != block.count(b"\n"):
            return False
        if self.stdout and self.stderr:
            out.extend([(_OUT if st == b"stdout" else _ERR, p + b"\n" if nl else p)
                        for p, nl, st in found])
        else:
            keep = b"stdout" if self.stdout else b"stderr"
            sid = _OUT if self.stdout else _ERR
            out.extend([(sid, p + b"\n" if nl else p) for p, nl, st in found if st == keep])
        return True


def details_prefix(attrs: dict[str, str] | None) -> bytes:
    """`docker logs --details`: the record's attributes, sorted, as
    `k=v,k=v` with query escaping, then a space (also with none)."""
    pairs = sorted((attrs or {}).items())
    return ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode() + b" "


async def _emit_range(f: _OpenFile, start: int, end: int | None,
                      flt: _Filter) -> AsyncGenerator[Batch | int, None]:
    """Yield batches of filtered records of one file range, then the offset
    reached."""
    pos = start
    while not flt.ended:
        # a few new lines (what a follower is woken for) are read on the
        # event loop, from the page cache the pump just wrote them to
        size = (os.fstat(f.fd).st_size if end is None else end) - pos
        if size <= INLINE_READ:
            block, nxt = _read_lines(f.fd, pos, end)
        else:
            block, nxt = await asyncio.to_thread(_read_lines, f.fd, pos, end)
        if nxt == pos:
            break
        pos = nxt
        batch: Batch = []
        flt.apply(block, batch)
        if batch:
            yield batch
    yield pos


async def read_logs(json_logs: list[Path], **kw: Any) -> AsyncGenerator[tuple[int, bytes], None]:
    """`read_log_batches`, one record at a time."""
    async with aclosing(read_log_batches(json_logs, **kw)) as batches:
        async for batch in batches:
            for item in batch:
                yield item


async def read_log_batches(json_logs: list[Path], *, stdout: bool, stderr: bool,
                           since_ns: int | None = None, until_ns: int | None = None,
                           tail: int | None = None, timestamps: bool = False,
                           follow: bool = False, details: bool = False,
                           is_running: Callable[[], bool] = lambda: False,
                           pump: LogPump | None = None,
                           poll_interval: float = FOLLOW_POLL,
                           ) -> AsyncGenerator[Batch, None]:
    """Records of a json-file log as (1 stdout | 2 stderr, payload), in
    batches of the records read together (each record stays one frame to
    the client).

    `json_logs` is oldest first (rotated files, then the current one); with
    `follow`, the last one is the file followed.
    """
    if not (stdout or stderr):
        raise InvalidParameter("must specify at least one of 'stdout' or 'stderr'")
    running = is_running()
    follow = follow and running
    if pump is not None:
        # Bring the json log up to date first; a stopped container's open
        # line is written too (as dockerd does when the copier hits EOF).
        await pump.pump_once(final=not running)
    flt = _Filter(stdout, stderr, since_ns, until_ns, timestamps, details)
    files = await asyncio.to_thread(_open_all, [Path(p) for p in json_logs])
    try:
        if tail is not None and tail >= 0:
            await asyncio.to_thread(_tail_start, files, tail)
        for f in files:
            async with aclosing(_emit_range(f, f.start, f.end, flt)) as items:
                async for item in items:
                    if isinstance(item, int):
                        f.start = item
                    else:
                        yield item
            if flt.ended:
                return
        if not follow or not json_logs:
            return
        # Follow the current file from where history stopped.
        last = Path(json_logs[-1])
        follower = _Follower(last)
        if files and files[-1].path == last:
            follower.cur = files.pop()
        for f in files:
            os.close(f.fd)
        files = []
        try:
            converted = False
            while True:
                running = is_running()
                if pump is not None and not (converted and running):
                    await pump.pump_once(final=not running)
                # what the container's pump converts from here on wakes us
                seen = pump.converted if pump is not None else 0
                async with aclosing(follower.step(flt)) as batches:
                    async for batch in batches:
                        yield batch
                if flt.ended or not running:
                    return
                converted = False
                if pump is None:
                    await asyncio.sleep(poll_interval)
                elif not pump.has_more:
                    # woken by the container's own pump: the file is up to date
                    converted = await pump.wait_converted(seen, poll_interval)
        finally:
            follower.close()
    finally:
        for f in files:
            os.close(f.fd)


class _Follower:
    """The followed file: its descriptor and read offset; notices when the
    path gets a new file (rotation), drains the old one, then switches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cur: _OpenFile | None = None

    def close(self) -> None:
        if self.cur is not None:
            os.close(self.cur.fd)
            self.cur = None

    async def step(self, flt: _Filter) -> AsyncGenerator[Batch, None]:
        for _ in range(8):  # bounded: a rotation storm must not spin forever
            if self.cur is None:
                self.cur = await asyncio.to_thread(_open, self.path)
                if self.cur is None:
                    return
            cur = self.cur
            if os.fstat(cur.fd).st_size < cur.start:
                cur.start = 0  # max-file 1: truncated in place
            async with aclosing(_emit_range(cur, cur.start, None, flt)) as items:
                async for item in items:
                    if isinstance(item, int):
                        cur.start = item
                    else:
                        yield item
            if flt.ended:
                return
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            if (st.st_dev, st.st_ino) == cur.ino:
                return
            self.close()
            # Several rotations may have happened since the last look: the
            # files between ours and the new current one are read whole.
            newer = await asyncio.to_thread(_open_newer_rotated, self.path, cur.ino)
            try:
                for f in newer:
                    async with aclosing(_emit_range(f, 0, None, flt)) as items:
                        async for item in items:
                            if not isinstance(item, int):
                                yield item
                    if flt.ended:
                        return
            finally:
                for f in newer:
                    os.close(f.fd)


def _open_newer_rotated(path: Path, ino: tuple[int, int]) -> list[_OpenFile]:
    """The rotated files newer than the one with inode `ino` (which now sits
    at `<path>.k`): `.k-1` ... `.1`, oldest first.  Empty when that file is
    gone (rotated out); those records are lost to this follower, as with
    dockerd under very frequent rotation."""
    names: list[Path] = []
    i = 1
    while True:
        candidate = Path(f"{path}.{i}")
        try:
            st = os.stat(candidate)
        except FileNotFoundError:
            return []
        if (st.st_dev, st.st_ino) == ino:
            break
        names.append(candidate)
        i += 1
    return _open_all(list(reversed(names)))
