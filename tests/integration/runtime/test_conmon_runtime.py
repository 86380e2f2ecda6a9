"""Real containers through conmon with runc and crun (root only)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dockyard.errors import NotFound
from dockyard.runtime import commands, conmon, runtimes
from dockyard.runtime.attach import STDERR, STDOUT, AttachConnection
from dockyard.runtime.commands import ContainerCreateError
from dockyard.runtime.exec import ExecStartError, exec_process
from dockyard.runtime.logs import iter_log_entries

pytestmark = pytest.mark.root

PROCESS = {"args": ["/bin/true"], "env": ["PATH=/bin"], "cwd": "/",
           "user": {"uid": 0, "gid": 0}}


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def start_attached(h, c):
    conn = await AttachConnection.connect(c.layout.attach_socket)
    await commands.start(h.runtime, c.id)
    return conn


def test_output_attach_log_and_exit_code(harness):
    async def body():
        c = await harness.create(["/bin/sh", "-c", "echo hello; echo oops >&2; printf tail; exit 3"])
        conn = await start_attached(harness, c)
        chunks = [(s, d) async for s, d in conn]
        conn.close()
        out = b"".join(d for s, d in chunks if s == STDOUT)
        err = b"".join(d for s, d in chunks if s == STDERR)
        assert out == b"hello\ntail" and err == b"oops\n"
        assert await conmon.wait_for_exit(c) == 3
        entries = iter_log_entries(Path(c.layout.log_path).read_bytes())
        assert b"".join(e.data for e in entries if e.stream == "stdout") == b"hello\ntail"
        assert [e.partial for e in entries if e.stream == "stdout"][-1] is True
        assert any(e.stream == "stderr" and e.data == b"oops\n" for e in entries)
        assert abs(entries[0].timestamp_ns / 1e9 - time.time()) < 60
        await commands.delete(harness.runtime, c.id)
        with pytest.raises(NotFound):
            await commands.state(harness.runtime, c.id)
    run(body())


def test_kill_with_signal(harness):
    async def body():
        # A shell as PID 1 ignores an untrapped TERM, so trap it to see delivery.
        script = "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"
        c = await harness.create(["/bin/sh", "-c", script])
        conn = await start_attached(harness, c)
        assert (await conn.receive()).data == b"ready\n"
        await commands.kill(harness.runtime, c.id, "SIGTERM")
        assert await conmon.wait_for_exit(c) == 42
        conn.close()
        c2 = await harness.create(["/bin/sleep", "100"])
        await commands.start(harness.runtime, c2.id)
        assert (await commands.state(harness.runtime, c2.id))["status"] == "running"
        await commands.kill(harness.runtime, c2.id, 9)
        assert await conmon.wait_for_exit(c2) == 137
        assert (await commands.state(harness.runtime, c2.id))["status"] == "stopped"
        await commands.delete(harness.runtime, c2.id)
        await commands.delete(harness.runtime, c.id)
    run(body())


def test_exec_exit_code_and_streams(harness):
    async def body():
        c = await harness.create(["/bin/sleep", "100"])
        await commands.start(harness.runtime, c.id)
        proc = dict(PROCESS, args=["/bin/sh", "-c", "echo out; echo err >&2; exit 7"])
        sess = await exec_process(harness.runtime, harness.settings, c.id, "e1",
                                  str(harness.tmp / c.id / "exec-e1"), proc)
        out, err = await sess.attach.read_all()
        assert (out, err) == (b"out\n", b"err\n")
        assert await sess.wait() == 7
        sess.close()
        # Detached: no attach handshake, exit code still exact.
        sess = await exec_process(harness.runtime, harness.settings, c.id, "e2",
                                  str(harness.tmp / c.id / "exec-e2"),
                                  dict(PROCESS, args=["/bin/sh", "-c", "echo bg; exit 9"]),
                                  attach=False)
        assert sess.attach is None
        assert await sess.wait() == 9
        log = iter_log_entries(Path(sess.layout.log_path).read_bytes())
        assert b"".join(e.data for e in log) == b"bg\n"
        # The container's own exit file must be untouched by exec sessions.
        assert conmon.read_exit_code(c.exit_file) is None
        pids = await commands.ps(harness.runtime, c.id)
        assert c.pid in pids
        await commands.kill(harness.runtime, c.id, "KILL")
        assert await conmon.wait_for_exit(c) == 137
    run(body())


def test_exec_missing_executable(harness):
    async def body():
        c = await harness.create(["/bin/sleep", "100"])
        await commands.start(harness.runtime, c.id)
        with pytest.raises(ExecStartError) as info:
            await exec_process(harness.runtime, harness.settings, c.id, "e1",
                               str(harness.tmp / c.id / "exec-e1"),
                               dict(PROCESS, args=["nosuch"]))
        assert "nosuch" in info.value.runtime_message
        assert commands.start_error_exit_code(info.value.runtime_message) == 127
        await commands.kill(harness.runtime, c.id, "KILL")
        await conmon.wait_for_exit(c)
    run(body())


def test_exec_tty_and_resize(harness):
    async def body():
        c = await harness.create(["/bin/sleep", "100"])
        await commands.start(harness.runtime, c.id)
        proc = dict(PROCESS, terminal=True, consoleSize={"height": 24, "width": 80},
                    args=["/bin/sh", "-c", "tty; stty size; read x; stty size; exit 5"])
        sess = await exec_process(harness.runtime, harness.settings, c.id, "t1",
                                  str(harness.tmp / c.id / "exec-t1"), proc, stdin=True)
        first = b""
        while b"24 80" not in first:
            chunk = await sess.attach.receive()
            assert chunk is not None and chunk.stream == STDOUT   # a tty has one stream
            first += chunk.data
        assert b"/dev/pts/" in first and b"\r\n" in first
        await sess.resize(40, 120)
        await asyncio.sleep(0.1)
        await sess.attach.write_stdin(b"go\n")
        rest, _ = await sess.attach.read_all()
        assert b"40 120" in rest
        assert await sess.wait() == 5
        await commands.kill(harness.runtime, c.id, "KILL")
        await conmon.wait_for_exit(c)
    run(body())


def test_container_stdin_eof(harness):
    async def body():
        c = await harness.create(["/bin/cat"], io=conmon.ContainerIO(stdin=True))
        conn = await start_attached(harness, c)
        await conn.write_stdin(b"line one\n")
        assert (await conn.receive()).data == b"line one\n"
        await conn.write_stdin(b"x" * 100_000)
        await conn.close_stdin()
        out, _ = await conn.read_all()
        assert out == b"x" * 100_000
        assert await conmon.wait_for_exit(c) == 0
    run(body())


def test_exec_stdin_eof(harness):
    async def body():
        c = await harness.create(["/bin/sleep", "100"])
        await commands.start(harness.runtime, c.id)
        sess = await exec_process(harness.runtime, harness.settings, c.id, "s1",
                                  str(harness.tmp / c.id / "exec-s1"),
                                  dict(PROCESS, args=["/bin/sh", "-c", "cat; exit 4"]),
                                  stdin=True)
        await sess.attach.write_stdin(b"abc\n")
        await sess.attach.close_stdin()
        out, _ = await sess.attach.read_all()
        assert out == b"abc\n"
        assert await sess.wait() == 4
        await commands.kill(harness.runtime, c.id, "KILL")
        await conmon.wait_for_exit(c)
    run(body())


def test_pause_resume_update(harness):
    async def body():
        c = await harness.create(["/bin/sleep", "100"],
                                 resources={"memory": {"limit": 64 * 1024 * 1024}})
        await commands.start(harness.runtime, c.id)
        await commands.pause(harness.runtime, c.id)
        assert (await commands.state(harness.runtime, c.id))["status"] == "paused"
        await commands.resume(harness.runtime, c.id)
        assert (await commands.state(harness.runtime, c.id))["status"] == "running"
        await commands.update(harness.runtime, c.id, {"memory": {"limit": 32 * 1024 * 1024}})
        cg = Path("/sys/fs/cgroup/memory") / harness.cgroup_parent.strip("/") / c.id
        if runtimes.is_hybrid_cgroup_host():  # limits live in v1 here
            assert int((cg / "memory.limit_in_bytes").read_text()) == 32 * 1024 * 1024
        await commands.kill(harness.runtime, c.id, "KILL")
        assert await conmon.wait_for_exit(c) == 137
    run(body())


def test_create_failure_carries_runtime_message(harness):
    async def body():
        with pytest.raises(ContainerCreateError) as info:
            await harness.create(["nosuch"])
        msg = info.value.runtime_message
        assert "nosuch" in msg and "not found" in msg
        assert commands.start_error_exit_code(info.value.runtime_message) == 127
    run(body())


def test_oom_is_reported(harness):
    async def body():
        limit = 16 * 1024 * 1024
        c = await harness.create(
            ["/bin/sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
            resources={"memory": {"limit": limit, "swap": limit}})
        await commands.start(harness.runtime, c.id)
        code = await conmon.wait_for_exit(c)
        assert code == 137
        assert conmon.oom_killed(c.layout)
    run(body(), timeout=90)


LAUNCHER = textwrap.dedent("""
    import asyncio, json, sys
    from dockyard.runtime import commands, conmon, runtimes
    args = json.loads(sys.argv[1])
    async def main():
        rt = runtimes.OCIRuntime(**args["runtime"])
        layout = conmon.ContainerLayout(**args["layout"])
        c = await conmon.create_container(rt, conmon.ConmonSettings.detect(),
                                          args["id"], layout)
        await commands.start(rt, c.id)
        print(c.conmon_pid, c.pid)
    asyncio.run(main())
""")


def test_container_outlives_its_launcher(harness):
    """The daemon may exit or crash: conmon and the container keep going."""
    import dataclasses
    import json

    cid = harness.new_id()
    layout = harness.bundle(cid, ["/bin/sh", "-c", "sleep 1; echo done; exit 6"])
    harness.created.append(cid)
    payload = json.dumps({"runtime": dataclasses.asdict(harness.runtime),
                          "layout": dataclasses.asdict(layout), "id": cid})
    res = subprocess.run([sys.executable, "-c", LAUNCHER, payload], check=False,
                         capture_output=True,
                         text=True, timeout=60, cwd=str(Path(__file__).parents[3]))
    assert res.returncode == 0, res.stderr
    conmon_pid, pid = map(int, res.stdout.split())
    harness.conmon_pids.append(conmon_pid)

    async def body():
        assert conmon.process_alive(conmon_pid) and conmon.process_alive(pid)
        st = await commands.state(harness.runtime, cid)
        assert st["status"] == "running"
        # A later daemon process picks the container up from its files alone.
        c = conmon.MonitoredContainer(cid, pid, conmon_pid, layout, harness.runtime)
        assert await conmon.wait_for_exit(c) == 6
        assert b"done\n" in Path(layout.log_path).read_bytes()
    run(body())


def test_probe_and_prepare(harness, tmp_path):
    async def body():
        ok, reason = await runtimes.probe(harness.runtime, str(tmp_path))
        assert ok, reason
        text = (await runtimes.run([harness.runtime.path, "--version"])).stdout.decode()
        got = await runtimes.runtime_version(harness.runtime)
        assert got.version == runtimes.parse_version_output(text) != ""
        assert got.commit == runtimes.runtime_commit(text)
    run(body())
    for h in Path("/sys/fs/cgroup").iterdir():
        assert not (h / "dockyard-probe").exists()


def test_timing_true(harness, capsys):
    """Create -> exit for `true` through conmon (reported, loosely bounded)."""
    async def body():
        samples = []
        for _ in range(5):
            t0 = time.monotonic()
            c = await harness.create(["/bin/true"])
            await commands.start(harness.runtime, c.id)
            assert await conmon.wait_for_exit(c) == 0
            samples.append(time.monotonic() - t0)
            await commands.delete(harness.runtime, c.id)
        return sorted(samples)
    samples = run(body())
    median = samples[len(samples) // 2]
    with capsys.disabled():
        print(f"\n[{harness.runtime.name}] create->exit `true`: median {median * 1000:.1f} ms,"
              f" min {samples[0] * 1000:.1f} ms")
    assert median < 2.0


def test_verbs_on_an_exited_container_are_conflicts(harness):
    async def body():
        c = await harness.create(["/bin/true"])
        await commands.start(harness.runtime, c.id)
        assert await conmon.wait_for_exit(c) == 0
        for verb in (commands.kill, commands.pause, commands.start):
            with pytest.raises(commands.ContainerNotRunning):
                await verb(harness.runtime, c.id)
        await commands.delete(harness.runtime, c.id)
        await commands.delete(harness.runtime, c.id)   # idempotent
        with pytest.raises(NotFound):
            await commands.kill(harness.runtime, c.id, "KILL")
    run(body())


def test_prepare_runtimes_picks_crun_when_it_works(tmp_path):
    if os.geteuid() != 0 or not (shutil.which("runc") and shutil.which("crun")):
        pytest.skip("needs root, runc and crun")

    async def body():
        return await runtimes.prepare_runtimes(str(tmp_path / "exec"))
    rs = run(body())
    assert rs.default == "crun", rs.unusable
    assert {"runc", "crun"} <= set(rs.runtimes)
    if runtimes.is_hybrid_cgroup_host():
        assert rs.runtimes["crun"].create_path == str(tmp_path / "exec" / "crun-hybrid")
    assert rs.runtimes["runc"].root == str(tmp_path / "exec" / "runtime" / "runc")


def test_leave_stdin_open_survives_client_hangup(harness):
    """Docker's OpenStdin without StdinOnce: stdin outlives each attach client."""
    async def body():
        c = await harness.create(["/bin/cat"],
                                 io=conmon.ContainerIO(stdin=True, leave_stdin_open=True))
        first = await start_attached(harness, c)
        await first.write_stdin(b"one\n")
        assert (await first.receive()).data == b"one\n"
        await first.close_stdin()
        first.close()
        await asyncio.sleep(0.2)
        assert (await commands.state(harness.runtime, c.id))["status"] == "running"
        async with await AttachConnection.connect(c.layout.attach_socket) as second:
            await second.write_stdin(b"two\n")
            assert (await second.receive()).data == b"two\n"
        await commands.kill(harness.runtime, c.id, "KILL")
        assert await conmon.wait_for_exit(c) == 137
        assert b"one\n" in Path(c.layout.log_path).read_bytes()
    run(body())


def test_attach_socket_beyond_sun_path_limit(harness):
    """Bundles live deep under the data root; 108 bytes is easy to exceed."""
    async def body():
        cid = harness.new_id()
        deep = harness.tmp / ("d" * 60) / ("e" * 60)
        deep.mkdir(parents=True)
        layout = harness.bundle(cid, ["/bin/sh", "-c", "echo deep"])
        layout = conmon.ContainerLayout.in_bundle(str(Path(layout.bundle).rename(deep / cid)))
        assert len(layout.attach_socket) > 108
        harness.created.append(cid)
        c = await conmon.create_container(harness.runtime, harness.settings, cid, layout)
        harness.conmon_pids.append(c.conmon_pid)
        conn = await start_attached(harness, c)
        assert await conn.read_all() == (b"deep\n", b"")
        assert await conmon.wait_for_exit(c) == 0
    run(body())
