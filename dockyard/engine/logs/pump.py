"""LogPump: conmon's k8s-file log -> Docker's json-file log.

conmon owns the container's stdio and keeps writing its k8s-file log while
the daemon is down, so the daemon converts that log after the fact instead
of reading pipes itself.  The json-file output is what dockerd would have
written: one record per line, lines over 16 KiB cut into 16 KiB pieces
(only the last with "\\n", all with the line's first timestamp), rotation
by max-size/max-file done before a write, as moby's LogFile does.

Resume after a daemon restart (no side file, the json log is the truth):
a record's `time` is the timestamp of the first conmon record of its line,
and lines of one stream reach the json log in conmon order.  So for each
stream the tail of the json log gives T (time of its last record), how many
complete lines starting at T were written, and how many bytes of a line
starting at T were written as 16 KiB pieces.  Replaying the conmon log, a
line of that stream starting before T is skipped, lines starting at T are
skipped up to that count (then the piece bytes), later ones are written.

Equal timestamps are normal (conmon stamps every line of one read with the
same time), which is why the count is kept rather than "skip at or before
T".  Limits: a wall clock that steps backwards can make lines look older
than T (they are then skipped); if a stream has no record in the last
RESUME_SCAN_BYTES of the json log, its lines older than the oldest record
scanned are assumed written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.engine.logs.files import iter_lines_backward, json_log_files
from dockyard.engine.logs.format import (
    CHUNK_SIZE,
    JsonRecord,
    LogParseError,
    decode_json_record,
    encode_json_record,
    parse_k8s_line,
)

log = logging.getLogger(__name__)

READ_BATCH = 1 << 20              # conmon bytes converted per step
RESUME_SCAN_BYTES = 8 << 20       # json tail read back to find a stream's last line
POLL_INTERVAL = 0.2

_SKIP_ALL = -1


@dataclass
class _ResumePoint:
    time_ns: int
    lines: int = 0        # complete lines starting at time_ns already written
    piece_bytes: int = 0  # bytes of the next line at time_ns already written


@dataclass
class _StreamState:
    name: str
    buf: bytearray = field(default_factory=bytearray)  # unwritten bytes of the open line
    line_ts: int | None = None   # first conmon timestamp of the open line
    skip: int = 0                # bytes of the open line still to drop (_SKIP_ALL: all)
    resume: _ResumePoint | None = None

    def start_line(self, ts: int) -> None:
        self.line_ts = ts
        self.skip = 0
        point = self.resume
        if point is None or ts > point.time_ns:
            self.resume = None
        elif ts < point.time_ns:
            self.skip = _SKIP_ALL
        elif point.lines > 0:
            point.lines -= 1
            self.skip = _SKIP_ALL
        else:
            self.skip = point.piece_bytes
            point.piece_bytes = 0

    def take(self, piece: bytes, out: list[JsonRecord]) -> None:
        assert self.line_ts is not None
        if self.skip == _SKIP_ALL:
            return
        if self.skip:
            dropped = min(self.skip, len(piece))
            self.skip -= dropped
            piece = piece[dropped:]
            if not piece:
                return
        out.append(JsonRecord(self.name, self.line_ts, piece))

    def feed(self, ts: int, data: bytes, partial: bool, out: list[JsonRecord]) -> None:
        if self.line_ts is None:
            self.start_line(ts)
        self.buf += data
        # Docker's copier: a full 16 KiB buffer without "\n" becomes a piece.
        body_len = len(self.buf) - (0 if partial else 1)
        pos = 0
        while body_len - pos >= CHUNK_SIZE:
            self.take(bytes(self.buf[pos:pos + CHUNK_SIZE]), out)
            pos += CHUNK_SIZE
        if partial:
            del self.buf[:pos]
            return
        self.take(bytes(self.buf[pos:]), out)
        self.end_line()

    def flush(self, out: list[JsonRecord]) -> None:
        """The container exited mid-line: Docker logs the rest without "\\n"."""
        if self.line_ts is not None and self.buf:
            self.take(bytes(self.buf), out)
        self.end_line()

    def end_line(self) -> None:
        self.buf.clear()
        self.line_ts = None
        self.skip = 0


class LogPump:
    """Converts one container's conmon log into its json-file log.

    Safe to call from several tasks (`run` and `docker logs -f` readers):
    calls are serialised; the file work runs in a thread.
    """

    def __init__(self, conmon_log: Path, json_log: Path,
                 max_size: int | None = None, max_file: int = 1) -> None:
        self.conmon_log = Path(conmon_log)
        self.json_log = Path(json_log)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._lock = asyncio.Lock()
        # The asyncio lock is released when a caller is cancelled while its
        # thread still runs; this one guards the state for real.
        self._thread_lock = threading.Lock()
        self._resumed = False
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._offset = 0
        self._streams = {s: _StreamState(s) for s in ("stdout", "stderr")}
        self._out_fd: int | None = None
        self._out_size = 0

    # ------------------------------------------------------------ public

    async def pump_once(self, *, final: bool = False) -> int:
        """Convert every complete conmon record written since the last call;
        returns the number of json records written.  `final=True` (the
        container has exited) also writes a line left open without "\\n"."""
        async with self._lock:
            return await asyncio.to_thread(self._pump_sync, final)

    async def run(self, stop: asyncio.Event | Callable[[], bool],
                  interval: float = POLL_INTERVAL) -> None:
        """Pump every `interval` seconds until `stop` is set (or, given a
        callable such as `is_running`, until it returns False), then a final
        pump.  Errors are logged, not raised: logging must not kill the
        container's supervision."""
        def stopped() -> bool:
            return stop.is_set() if isinstance(stop, asyncio.Event) else not stop()

        try:
            while not stopped():
                await self._pump_logged(final=False)
                if isinstance(stop, asyncio.Event):
                    try:
                        await asyncio.wait_for(stop.wait(), interval)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(interval)
            await self._pump_logged(final=True)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.close)

    def close(self) -> None:
        with self._thread_lock:
            self._close_files()

    # ------------------------------------------------------------ internals

    async def _pump_logged(self, final: bool) -> None:
        try:
            await self.pump_once(final=final)
        except Exception:
            log.exception("log pump failed for %s", self.conmon_log)

    def _close_files(self) -> None:
        for fd in (self._fd, self._out_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._out_fd = None
        self._ino = None

    def _pump_sync(self, final: bool) -> int:
        with self._thread_lock:
            return self._pump_locked(final)

    def _pump_locked(self, final: bool) -> int:
        if not self._resumed:
            self._resume()
            self._resumed = True
        written = 0
        while True:
            records = self._read_batch()
            if records is None:
                break
            written += self._write(records)
        if final:
            out: list[JsonRecord] = []
            for st in self._streams.values():
                st.flush(out)
            written += self._write(out)
        return written

    def _open_conmon(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.conmon_log, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self._fd, self._ino, self._offset = fd, (st.st_dev, st.st_ino), 0
        return True

    def _read_batch(self) -> list[JsonRecord] | None:
        """Next batch of records, or None when the conmon log is drained."""
        if not self._open_conmon():
            return None
        assert self._fd is not None
        if os.fstat(self._fd).st_size < self._offset:
            self._offset = 0  # truncated in place: start over
        data = os.pread(self._fd, READ_BATCH, self._offset)
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) == READ_BATCH:  # no record fits: not a k8s-file log
                self._offset += len(data)
                return []
            # Drained.  conmon --log-size-max replaces the file (new inode):
            # it closes the old one first, so what we read is complete.
            if self._replaced():
                os.close(self._fd)
                self._fd = None
                return [] if self._open_conmon() else None
            return None
        self._offset += cut + 1
        out: list[JsonRecord] = []
        for raw in data[:cut + 1].split(b"\n")[:-1]:
            try:
                entry = parse_k8s_line(raw + b"\n")
            except LogParseError as err:
                log.warning("skipping bad conmon log line in %s: %s", self.conmon_log, err)
                continue
            self._streams[entry.stream].feed(entry.timestamp_ns, entry.data, entry.partial, out)
        return out

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.conmon_log)
        except FileNotFoundError:
            return False  # removed: keep the old file, nothing new will come
        return (st.st_dev, st.st_ino) != self._ino

    # ------------------------------------------------------------ writing

    def _open_out(self) -> int:
        if self._out_fd is None:
            self._out_fd = os.open(self.json_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                   | os.O_CLOEXEC, 0o640)
            self._out_size = os.fstat(self._out_fd).st_size
        return self._out_fd

    def _write(self, records: list[JsonRecord]) -> int:
        if not records:
            return 0
        fd = self._open_out()
        pending: list[bytes] = []
        pending_size = 0
        for rec in records:
            line = encode_json_record(rec.stream, rec.log, rec.time_ns)
            # moby rotates before a write once the file reached max-size.
            if self.max_size is not None and self._out_size + pending_size >= self.max_size:
                if pending:
                    os.write(fd, b"".join(pending))
                pending, pending_size = [], 0
                fd = self._rotate()
            pending.append(line)
            pending_size += len(line)
            if self.max_size is None and pending_size >= READ_BATCH:
                os.write(fd, b"".join(pending))
                self._out_size += pending_size
                pending, pending_size = [], 0
        if pending:
            os.write(fd, b"".join(pending))
        self._out_size += pending_size
        return len(records)

    def _rotate(self) -> int:
        if self._out_fd is not None:
            os.close(self._out_fd)
            self._out_fd = None
        name = str(self.json_log)
        if self.max_file >= 2:
            try:
                os.unlink(f"{name}.{self.max_file - 1}")
            except FileNotFoundError:
                pass
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{name}.{i - 1}", f"{name}.{i}")
                except FileNotFoundError:
                    pass
            try:
                os.rename(name, f"{name}.1")
            except FileNotFoundError:
                pass
        # max-file 1: moby truncates the same file (readers see it shrink).
        self._out_fd = os.open(self.json_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                               | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        self._out_size = 0
        return self._out_fd

    # ------------------------------------------------------------ resume

    def _resume(self) -> None:
        self._drop_torn_tail()
        groups: dict[str, list[JsonRecord]] = {}
        done: set[str] = set()
        oldest_seen: int | None = None
        scanned = 0
        files = json_log_files(self.json_log, self.max_file)
        for path in reversed(files):
            for _off, line in iter_lines_backward(path):
                scanned += len(line) + 1
                rec = decode_json_record(line)
                if rec is None:
                    continue
                oldest_seen = rec.time_ns if oldest_seen is None else min(oldest_seen,
                                                                          rec.time_ns)
                group = groups.get(rec.stream)
                if rec.stream in done:
                    pass
                elif group is None:
                    groups[rec.stream] = [rec]
                elif group[0].time_ns == rec.time_ns:
                    group.append(rec)
                else:
                    done.add(rec.stream)
                if len(done) == 2:
                    break
                # Past the budget only streams with an open group keep reading.
                if scanned > RESUME_SCAN_BYTES and all(
                        s in done or s not in groups for s in self._streams):
                    break
            else:
                continue
            break
        for name, st in self._streams.items():
            group = groups.get(name)
            if group:
                group.reverse()  # collected newest first
                lines = piece = 0
                for rec in group:
                    if rec.partial:
                        piece += min(CHUNK_SIZE, len(rec.log))
                    else:
                        lines, piece = lines + 1, 0
                st.resume = _ResumePoint(group[0].time_ns, lines, piece)
            elif scanned > RESUME_SCAN_BYTES and oldest_seen is not None:
                st.resume = _ResumePoint(oldest_seen)

    def _drop_torn_tail(self) -> None:
        """A kill -9 mid-write may leave half a json line: cut it off so the
        next record starts on a fresh line."""
        try:
            fd = os.open(self.json_log, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                block = os.pread(fd, pos - start, start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    pos = start + cut + 1
                    break
                pos = start
            if pos != size:
                os.ftruncate(fd, pos)
        finally:
            os.close(fd)
