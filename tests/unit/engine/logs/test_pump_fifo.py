"""The log pump over a real FIFO (no root): it takes from the FIFO only what
it converts, survives being killed at any point without losing or
repeating a record, and lets go of every file when closed."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_testutil import conmon_records, reference, stamp

from dockyard.engine.logs import pump as pump_mod
from dockyard.engine.logs import spool as spool_mod
from dockyard.engine.logs.pump import LogPump

T0 = 1_795_000_000_000_000_000


class Fifo:
    """A log FIFO as the keeper holds it: read-write, never without a reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.size = fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, 1 << 20)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def held(self) -> int:
        """Bytes waiting in the FIFO."""
        buf = bytearray(4)
        fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Fifo]:
    f = Fifo(tmp_path / "conmon.fifo")
    yield f
    os.close(f.fd)


def new_pump(tmp_path: Path, fifo: Fifo, **kw: object) -> LogPump:
    return LogPump(tmp_path / "conmon.log", tmp_path / "c-json.log", fifo=fifo.path,
                   **kw)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def json_lines(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "c-json.log"
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def test_fifo_records_reach_the_json_log(tmp_path: Path, fifo: Fifo) -> None:
    data = conmon_records(random.Random(5), 50)
    fifo.write(data)
    pump = new_pump(tmp_path, fifo)
    run(pump.pump_once(final=True))
    assert json_lines(tmp_path) == reference(data)
    assert fifo.held() == 0
    assert (tmp_path / "conmon.log").stat().st_size == 0  # nothing left to replay


def test_pump_takes_from_the_fifo_only_what_it_converts(
        tmp_path: Path, fifo: Fifo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pump_mod, "STEP_BUDGET", 64 << 10)
    monkeypatch.setattr(pump_mod, "SPOOL_AHEAD", 128 << 10)
    line = b"z" * 100 + b"\n"
    data = b"".join(stamp(T0 + i) + b" stdout F " + line for i in range(6000))
    fifo.write(data)   # about 880 KB: the FIFO is nearly full
    pump = new_pump(tmp_path, fifo)
    run(pump.pump_once())
    assert pump.has_more
    # what the pump did not convert yet is still in the FIFO, not on disk
    assert fifo.held() > len(data) - (300 << 10)
    assert (tmp_path / "conmon.log").stat().st_size <= (128 << 10) + (64 << 10)
    while pump.has_more:
        run(pump.pump_once())
    assert len(json_lines(tmp_path)) == 6000 and fifo.held() == 0


class Killed(BaseException):
    """The daemon dies here (kill -9): nothing after it runs."""


@pytest.mark.parametrize("seed", range(20))
def test_killed_anywhere_resumes_exactly(tmp_path: Path, fifo: Fifo, seed: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(pump_mod, "READ_BATCH", rng.choice([4096, 20000, 1 << 20]))
    monkeypatch.setattr(pump_mod, "SPOOL_AHEAD", rng.choice([8192, 50000]))
    monkeypatch.setattr(pump_mod, "STEP_BUDGET", rng.choice([10000, 1 << 20]))
    monkeypatch.setattr(spool_mod, "REBASE_MIN", rng.choice([1, 2000, 30000]))
    data = conmon_records(rng, 120)
    real_write, real_rename = pump_mod._write_all, os.rename
    armed = {"n": -1}

    def tick() -> None:
        armed["n"] -= 1
        if armed["n"] == 0:
            raise Killed

    def torn_write(fd: int, chunk: bytes) -> None:
        tick()
        if armed["n"] == -1 and rng.random() < 0.5:  # dies half way through a write
            real_write(fd, chunk[:rng.randrange(len(chunk) + 1)])
            raise Killed
        real_write(fd, chunk)

    def rename(src: str | Path, dst: str | Path) -> None:
        tick()
        real_rename(src, dst)

    monkeypatch.setattr(pump_mod, "_write_all", torn_write)
    monkeypatch.setattr(spool_mod.os, "rename", rename)
    pos = 0
    pump = new_pump(tmp_path, fifo)
    while pos < len(data) or rng.random() < 0.5:
        # conmon writes a bit more (what fits), the daemon pumps, or dies
        room = fifo.size - fifo.held()
        n = min(room, rng.randrange(1, 60000), len(data) - pos)
        fifo.write(data[pos:pos + n])
        pos += n
        armed["n"] = rng.randrange(1, 8) if rng.random() < 0.4 else -1
        try:
            run(pump.pump_once())
        except Killed:
            pump = new_pump(tmp_path, fifo)  # the old one's files die with it
    armed["n"] = -1
    run(pump.pump_once(final=True))
    assert json_lines(tmp_path) == reference(data)


def test_closed_pump_never_reads_again(tmp_path: Path) -> None:
    conmon, jlog = tmp_path / "ctr.log", tmp_path / "c-json.log"
    conmon.write_bytes(stamp(T0) + b" stdout F one\n")
    pump = LogPump(conmon, jlog)
    assert run(pump.pump_once()) == 1
    run(pump.aclose())
    with open(conmon, "ab") as f:
        f.write(stamp(T0 + 1) + b" stdout F two\n")
    # a `docker logs -f` reader still holding it gets nothing, nothing twice
    assert run(pump.pump_once(final=True)) == 0
    assert jlog.read_bytes().count(b"\n") == 1


def test_close_lets_go_of_every_file(tmp_path: Path, fifo: Fifo) -> None:
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    fifo.write(conmon_records(random.Random(1), 10))
    before = open_fds()
    pump = new_pump(tmp_path, fifo, max_size=4096, max_file=2)
    run(pump.pump_once())
    assert len(open_fds() - before) >= 3  # FIFO, spool, json log
    run(pump.pump_once(final=True))
    run(pump.aclose())
    assert open_fds() - before <= {str(fd) for fd in range(3)}
    assert not (open_fds() - before)


def test_closing_under_a_waiter_leaves_the_fd_number_to_its_next_owner(
        tmp_path: Path, fifo: Fifo) -> None:
    """The exit monitor closes a pump while its task still waits on the
    FIFO; the number of the closed fd is reused by the next open (another
    container's pidfd, say), whose readiness must still reach its owner."""
    def fd_of(path: Path) -> int:
        return next(int(n) for n in os.listdir("/proc/self/fd")
                    if os.path.realpath(f"/proc/self/fd/{n}") == str(path)
                    and int(n) != fifo.fd)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pump = new_pump(tmp_path, fifo)
        await pump.pump_once()
        number = fd_of(fifo.path)
        waiter = asyncio.create_task(pump.wait_output(0.1))
        await asyncio.sleep(0.05)
        await pump.aclose()
        r, w = os.pipe()
        if r != number:
            os.dup2(r, number)
            os.close(r)
        seen = asyncio.Event()
        loop.add_reader(number, seen.set)
        try:
            os.write(w, b"x")
            await asyncio.wait_for(seen.wait(), 2)
            await asyncio.wait_for(waiter, 2)      # woken by the close
            seen.clear()
            await asyncio.wait_for(seen.wait(), 2)  # still registered after it left
        finally:
            loop.remove_reader(number)
            os.close(number)
            os.close(w)

    run(main())


def test_a_failing_pump_is_retried_calmly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pump that fails (a full disk, say) with output waiting in the FIFO
    must not spin the event loop."""
    from types import SimpleNamespace

    from dockyard.engine.logs import service as service_mod

    monkeypatch.setattr(service_mod, "FAILED_PUMP_RETRY", 0.05)
    calls = {"n": 0}

    class Failing:
        has_more = False

        async def pump_once(self) -> int:
            calls["n"] += 1
            raise OSError(28, "No space left on device")

        async def wait_output(self, poll: float) -> None:
            return  # the FIFO is readable: there is output waiting

    logs = service_mod.LogService(store=None)  # type: ignore[arg-type]
    c = SimpleNamespace(id="c" * 64)
    logs._pumps[c.id] = Failing()  # type: ignore[assignment]

    async def go() -> None:
        task = asyncio.create_task(logs.keep_pumping(c))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        task.cancel()

    run(go())
    assert 2 <= calls["n"] <= 10


def test_without_splice_the_pump_still_drains_the_fifo(
        tmp_path: Path, fifo: Fifo, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_splice(*args: object, **kw: object) -> int:
        raise OSError(22, "Invalid argument")  # a file system without splice_write

    monkeypatch.setattr(spool_mod.os, "splice", no_splice)
    data = conmon_records(random.Random(8), 40)
    fifo.write(data)
    run(new_pump(tmp_path, fifo).pump_once(final=True))
    assert json_lines(tmp_path) == reference(data) and fifo.held() == 0


def _count_thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(fn, /, *args, **kw):  # type: ignore[no-untyped-def]
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kw)

    monkeypatch.setattr(pump_mod.asyncio, "to_thread", counted)
    return hops


def test_a_few_lines_are_converted_without_a_worker_thread(
        tmp_path: Path, fifo: Fifo, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a `logs -f` client waits for (a few lines) is converted on the
    event loop; the first step (the resume scan) and big ones take a thread."""
    hops = _count_thread_hops(monkeypatch)
    first = b"".join(stamp(T0 + i) + b" stdout F first %d\n" % i for i in range(3))
    second = b"".join(stamp(T0 + 10 + i) + b" stderr F second %d\n" % i for i in range(2))

    async def main() -> None:
        pump = new_pump(tmp_path, fifo)
        fifo.write(first)
        await pump.pump_once()                  # resumes: in a thread
        assert hops == ["_pump_sync"]
        fifo.write(second)
        assert await pump.pump_once() == 2
        assert hops == ["_pump_sync"]           # no new hop
        big = b"".join(stamp(T0 + i) + b" stdout F " + b"y" * 200 + b"\n"
                       for i in range(400))     # past INLINE_BYTES
        assert len(big) > pump_mod.INLINE_BYTES
        fifo.write(big)
        await pump.pump_once()
        assert hops == ["_pump_sync", "_pump_sync"]
        await pump.aclose()

    run(main())
    assert fifo.held() == 0
    assert json_lines(tmp_path)[:5] == reference(first + second)
    assert len(json_lines(tmp_path)) == 405


def test_an_inline_step_stops_at_its_budget(tmp_path: Path, fifo: Fifo,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A container writing on while a small step runs on the event loop: the
    step stops at INLINE_BYTES and leaves the rest to the next, threaded one."""
    monkeypatch.setattr(pump_mod, "INLINE_BYTES", 4096)
    hops = _count_thread_hops(monkeypatch)
    line = b"w" * 100 + b"\n"
    sent = {"n": 20}

    async def main() -> None:
        pump = new_pump(tmp_path, fifo)
        await pump.pump_once()                   # the resume, in a thread
        fifo.write(b"".join(stamp(T0 + i) + b" stdout F " + line for i in range(20)))
        assert pump._small_step(False)
        # more arrives during the step: the spool's fill sees it
        real_fill = pump._spool.fill

        def fill_and_more(upto: int) -> int:
            if fifo.held() < 8192:
                fifo.write(b"".join(stamp(T0 + sent["n"] + i) + b" stdout F " + line
                                    for i in range(60)))
                sent["n"] += 60
            return real_fill(upto)

        monkeypatch.setattr(pump._spool, "fill", fill_and_more)
        await pump.pump_once()
        assert pump.has_more and len(hops) == 1
        monkeypatch.setattr(pump._spool, "fill", real_fill)
        while pump.has_more:
            await pump.pump_once()
        await pump.aclose()

    run(main())
    assert fifo.held() == 0
    records = json_lines(tmp_path)
    assert len(records) == len(set(records)) == sent["n"] >= 80  # none lost, none twice


def test_waits_end_on_their_own_timer(tmp_path: Path, fifo: Fifo) -> None:
    async def main() -> None:
        pump = new_pump(tmp_path, fifo)
        await pump.pump_once()
        seen = pump.converted
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await pump.wait_converted(seen, 0.05) is False
        assert 0.04 <= loop.time() - t0 < 1
        t0 = loop.time()
        await pump.wait_output(0.01, 0.05)      # nothing written: the timer ends it
        assert 0.04 <= loop.time() - t0 < 1
        assert pump._watched is None             # the FIFO is no longer watched
        waiter = asyncio.create_task(pump.wait_converted(seen, 5))
        await asyncio.sleep(0)
        fifo.write(conmon_records(random.Random(3), 2))
        await pump.pump_once()
        assert await asyncio.wait_for(waiter, 1) is True
        await pump.aclose()

    run(main())
