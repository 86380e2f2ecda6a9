"""LogPump: conmon's k8s-file log -> Docker's json-file log.

conmon owns the container's stdio and keeps running while the daemon is
down, so the daemon converts conmon's k8s-file log (convert.py) instead of
reading the container's pipes itself, into what dockerd would have written,
rotated by max-size/max-file before a write as moby's LogFile does.  Only
that rotation ever drops a line.

How no line is lost, whatever the rate.  conmon writes its log into a FIFO
(`conmon.fifo`), its own rotation off.  The pump moves what the FIFO holds
into a spool file with splice(2) (spool.py) and converts the spool; it takes
only SPOOL_AHEAD bytes ahead of what it has converted, so a container that
writes faster than that fills the FIFO (64 KiB), conmon blocks on it and the
container blocks on its stdout: back-pressure, as Docker's log FIFO gives.
While the daemon is down the same happens, as under dockerd with
live-restore: the container waits, and the disk holds the spool's few MiB.
A keeper process holds the FIFO open from before conmon starts until the
daemon has drained it (runtime/logfifo.py), so what a container wrote just
before exiting while the daemon was away is not thrown away with the pipe.
A daemon killed at any instant leaves every byte in the FIFO, in the spool,
or in the json log; on restart the spool is replayed from its checkpoint
line and what the json log already holds is skipped (convert.py), so every
line is there exactly once.

Why this design.  Measured on the project's 2-vCPU host, 1,000,000 lines of
101 bytes (`seq | sed` in busybox):
- conmon --log-size-max (what there was) truncated the log before it was
  converted: 315,069 lines were kept.
- A regular file conmon never truncates, freed as it is converted, loses
  nothing but gives no back-pressure: the container outran the converter,
  conmon's file reached the whole 147 MB (440 MB for 3,000,000 lines) with
  the json log 40 % behind, and while the daemon is down it grows without
  bound.  conmon 2.1.6 has no other bounded mode (journald or passthrough
  are not logs we can convert; podman keeps the rotating k8s-file).
- Reading the FIFO straight into memory would lose what was read but not
  yet written when the daemon dies; splice into the spool cannot.
- This design: the flood takes 2.8-3.5 s, as under dockerd 20.10 on the
  same host at the same time (2.9-4.5 s); the converter does 1,000,000 lines
  in 1.7 s of CPU; a 1 MiB FIFO instead of the kernel's 64 KiB made no
  difference we could measure.

A pump is closed once its container's run is over; a closed pump does
nothing more, so a reader still holding it never reads anything twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import termios
import threading
from collections.abc import Callable
from pathlib import Path

from dockyard.engine.logs.convert import CHECKPOINT_MARK, Converter, TailScan
from dockyard.engine.logs.files import iter_lines_backward, json_log_files
from dockyard.engine.logs.format import decode_json_record
from dockyard.engine.logs.spool import Spool

log = logging.getLogger(__name__)

READ_BATCH = 1 << 20              # conmon bytes converted per step
SPOOL_AHEAD = 2 << 20             # bytes taken from the FIFO ahead of conversion
STEP_BUDGET = 8 << 20             # bytes converted per pump_once while the container runs
RESUME_SCAN_BYTES = 8 << 20       # json tail read back to find a stream's last line
POLL_INTERVAL = 0.2               # without a FIFO to watch
INLINE_BYTES = 64 << 10          # at most this much waiting: converted on the event loop
IDLE_WAIT = 600.0                 # a FIFO's readiness is enough; this only bounds a wait
#                                   (each running container wakes this often: at 10 s,
#                                   500 idle containers cost 0.4 % of a core)


class LogPump:
    """Converts one container's conmon log into its json-file log.

    `conmon_log` is the spool (or, without `fifo`, conmon's own log file).
    Safe to call from several tasks (the exit monitor and `docker logs -f`
    readers): calls are serialised; the file work runs in a thread.
    """

    def __init__(self, conmon_log: Path, json_log: Path, max_size: int | None = None,
                 max_file: int = 1, fifo: Path | None = None,
                 attrs: dict[str, str] | None = None) -> None:
        self.conmon_log = Path(conmon_log)
        self.json_log = Path(json_log)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._lock = asyncio.Lock()
        # The asyncio lock is released when a caller is cancelled while its
        # thread still runs; this one guards the state for real.
        self._thread_lock = threading.Lock()
        self._spool = Spool(self.conmon_log, None if fifo is None else Path(fifo))
        self._conv = Converter(attrs)
        self._resumed = False
        self._out_fd: int | None = None
        self._out_size = 0
        self.closed = False
        self.has_more = False     # the last call stopped with output left to convert
        # counts the calls that wrote records; followers wait for it to move
        self.converted = 0
        self._converted_waiters: set[asyncio.Future[bool]] = set()
        # Waiting for the FIFO (event loop side): one registration with the
        # loop for all waiters, taken out before the FIFO's fd is closed, so
        # a closed fd's number, reused by the next open anywhere in the
        # daemon (a pidfd, a socket), is never left registered or removed.
        self._waiters: set[asyncio.Future[bool]] = set()
        self._watched: tuple[asyncio.AbstractEventLoop, int] | None = None
        self._closing = False

    # ------------------------------------------------------------ public

    async def pump_once(self, *, final: bool = False) -> int:
        """Convert every complete conmon record written since the last call
        (while running, at most STEP_BUDGET bytes: see `has_more`); returns
        the number of json records written.  `final=True` (the container has
        exited) drains everything and writes a line left open without "\\n"."""
        async with self._lock:
            written = self._pump_inline() if self._small_step(final) else None
            if written is None:
                written = await asyncio.to_thread(self._pump_sync, final)
        if written:
            self.converted += 1
            for fut in self._converted_waiters:
                _wake(fut)
        return written

    async def wait_converted(self, seen: int, timeout: float) -> bool:
        """Until a call writes records after `converted` was `seen` (at once
        if one did already), or `timeout` seconds: a follower wakes as soon
        as there is something to read instead of polling the file.  True
        when records were written."""
        if self.converted != seen or self.closed:
            return self.converted != seen
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._converted_waiters.add(fut)
        try:
            return await _within(fut, timeout)
        finally:
            self._converted_waiters.discard(fut)

    async def wait_output(self, poll: float, timeout: float = IDLE_WAIT) -> None:
        """Until conmon writes more: the FIFO says so (at most `timeout`
        seconds), or, reading conmon's own file, `poll` seconds.  The caller
        must stop waiting before the pump is closed."""
        fd = self._spool.fifo_fd
        if fd is None or self.closed or self._closing:
            await asyncio.sleep(poll)
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(ready)
        if self._watched is None:
            loop.add_reader(fd, self._readable)
            self._watched = (loop, fd)
        try:
            await _within(ready, timeout)
        finally:
            self._waiters.discard(ready)
            if not self._waiters:
                self._unwatch()

    def _readable(self) -> None:
        self._unwatch()
        for f in self._waiters:
            _wake(f)

    def _unwatch(self) -> None:
        if self._watched is not None:
            loop, fd = self._watched
            self._watched = None
            loop.remove_reader(fd)

    async def run(self, stop: asyncio.Event | Callable[[], bool],
                  interval: float = POLL_INTERVAL) -> None:
        """Pump until `stop` is set (or, given a callable such as
        `is_running`, until it returns False), then a final pump and close.
        Errors are logged, not raised: logging must not kill the
        container's supervision."""
        def stopped() -> bool:
            return stop.is_set() if isinstance(stop, asyncio.Event) else not stop()

        try:
            while not stopped():
                await self._pump_logged(final=False)
                if not self.has_more:
                    await self.wait_output(interval, interval)
            await self._pump_logged(final=True)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._closing = True
        self._readable()      # the waiters go, and the loop lets go of the fd
        async with self._lock:
            await asyncio.to_thread(self.close)

    def close(self) -> None:
        with self._thread_lock:
            self.closed = True
            self._spool.close()
            if self._out_fd is not None:
                os.close(self._out_fd)
                self._out_fd = None

    # ------------------------------------------------------------ internals

    def _small_step(self, final: bool) -> bool:
        """True when the step is a few lines: a FIFO holding at most
        INLINE_BYTES and nothing left over from the last step.  Those are
        converted on the event loop, which saves a line on its way to a
        `logs -f` client the hop to a worker thread and back (the writes go
        to the page cache; the step is tens of microseconds)."""
        spool = self._spool
        fd = spool.fifo_fd
        if final or not self._resumed or self.has_more or fd is None or self.closed:
            return False
        if spool.end - self._conv.pos > INLINE_BYTES:
            return False
        try:
            pending = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"),
                                     "little", signed=True)
        except OSError:
            return False
        return pending <= INLINE_BYTES

    def _pump_inline(self) -> int | None:
        """`_pump_sync` on the calling thread, or None when a worker thread
        still holds the state (a cancelled caller's step)."""
        if not self._thread_lock.acquire(blocking=False):
            return None
        try:
            # a container writing on meanwhile: what is past the budget is
            # left for the next step, in a thread (`has_more`)
            return 0 if self.closed else self._pump_locked(False, INLINE_BYTES)
        finally:
            self._thread_lock.release()

    async def _pump_logged(self, final: bool) -> None:
        try:
            await self.pump_once(final=final)
        except Exception:
            log.exception("log pump failed for %s", self.conmon_log)

    def _pump_sync(self, final: bool) -> int:
        with self._thread_lock:
            if self.closed:
                return 0
            return self._pump_locked(final)

    def _pump_locked(self, final: bool, budget: int | None = None) -> int:
        self.has_more = False
        if budget is None:
            budget = STEP_BUDGET
        if not self._spool.open():
            return 0
        if not self._resumed:
            self._resume()
            self._resumed = True
        conv, spool = self._conv, self._spool
        written = 0
        while True:
            moved = spool.fill(conv.pos + SPOOL_AHEAD)
            data = spool.read(conv.pos, READ_BATCH)
            out: list[bytes] = []
            used = conv.feed(data, out) if data else 0
            if not used and len(data) == READ_BATCH:  # no record fits: not a k8s-file log
                conv.skip_garbage(len(data))
                used = len(data)
            written += self._write(out)
            if spool.forget_due(conv.pos):
                spool.forget(conv.pos, conv.checkpoint())
            if not used and not moved:
                break
            budget -= used
            if budget <= 0 and not final:
                self.has_more = True
                break
        if final:
            out = []
            conv.finish(out)
            written += self._write(out)
            spool.forget(conv.pos, everything=True)
            if conv.bad_lines:
                log.warning("%d bad lines in %s", conv.bad_lines, self.conmon_log)
        return written

    # ------------------------------------------------------------ writing

    def _open_out(self) -> int:
        if self._out_fd is None:
            self._out_fd = os.open(self.json_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                   | os.O_CLOEXEC, 0o640)
            self._out_size = os.fstat(self._out_fd).st_size
        return self._out_fd

    def _write(self, chunks: list[bytes]) -> int:
        """Write json-file text (whole records once joined); returns the
        number of records."""
        data = b"".join(chunks)
        if not data:
            return 0
        fd = self._open_out()
        if self.max_size is None or self._out_size + len(data) < self.max_size:
            _write_all(fd, data)
            self._out_size += len(data)
            return data.count(b"\n")
        pending: list[bytes] = []
        pending_size = 0
        for record in data[:-1].split(b"\n"):
            record += b"\n"  # the text holds no other raw "\n"
            # moby rotates before a write once the file reached max-size.
            if self._out_size + pending_size >= self.max_size:
                if pending:
                    _write_all(fd, b"".join(pending))
                pending, pending_size = [], 0
                fd = self._rotate()
            pending.append(record)
            pending_size += len(record)
        if pending:
            _write_all(fd, b"".join(pending))
        self._out_size += pending_size
        return data.count(b"\n")

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
        scan = TailScan(RESUME_SCAN_BYTES, tuple(self._conv.streams))
        done = False
        for path in reversed(json_log_files(self.json_log, self.max_file)):
            for _off, line in iter_lines_backward(path):
                if scan.add(decode_json_record(line), len(line) + 1):
                    done = True
                    break
            if done:
                break
        # A spool the pump has cut starts with the converter's state there.
        head = self._spool.first_line()
        checkpoint = head if head.startswith(CHECKPOINT_MARK) else None
        if checkpoint is not None:
            self._conv.pos = len(checkpoint)
        self._conv.resume(scan.points(), checkpoint)

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


async def _within(fut: asyncio.Future[bool], timeout: float) -> bool:
    """Wait for `fut` at most `timeout` seconds: its result (a waker sets
    True), or False when the time ran out.  A timer on the future itself,
    not `asyncio.wait_for`, whose task per wait costs a line on its way to a
    follower two more turns of the event loop."""
    handle = asyncio.get_running_loop().call_later(timeout, _wake, fut, False)
    try:
        return await fut
    finally:
        handle.cancel()


def _wake(fut: asyncio.Future[bool], value: bool = True) -> None:
    if not fut.done():
        fut.set_result(value)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
