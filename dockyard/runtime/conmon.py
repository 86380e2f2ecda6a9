"""Creating containers under conmon, the per-container monitor.

conmon owns the container's stdio, log file and exit status, and
double-forks away from us, so containers outlive the daemon: a restarted
engine finds the exit code in the exit file and the output in the log.

Launch protocol (conmon 2.1.6, API version 1):
  1. We pass the write end of a pipe as _OCI_SYNCPIPE.  The launcher process
     exits at once (after writing --conmon-pidfile); the grandchild runs
     `RUNTIME create`.
  2. On success conmon writes {"data": PID}; on failure
     {"data": -1, "message": "<runtime stderr>"}.  If the runtime printed
     nothing, conmon just exits: EOF, and the runtime's --log file has the text.
  3. The attach socket and ctl/winsz fifos exist before `create` runs, so a
     client can attach between create and start and miss no output.
  4. On exit conmon writes the bare exit code (128+signal when killed) to
     EXIT_DIR/ID and PERSIST_DIR/exit, and an empty PERSIST_DIR/oom file if
     the memory cgroup reported an OOM kill.

The k8s-file log is a plain file conmon rotates at `log_size_max` (exec
sessions), a FIFO the daemon drains (containers: see logfifo.py), or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from typing import Literal

from dockyard.errors import SystemError_
from dockyard.runtime import logfifo
from dockyard.runtime.commands import ContainerCreateError, delete
from dockyard.runtime.pipes import InboundPipe
from dockyard.runtime.process import runtime_error_message
from dockyard.runtime.runtimes import OCIRuntime

# Variables that must not reach the runtime: systemd socket activation and
# notify protocols would be misapplied to the container.
_SCRUB_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET")


@dataclass(frozen=True)
class ConmonSettings:
    path: str = "conmon"
    log_size_max: int | None = None     # bytes; conmon truncates the log past it
    log_level: str | None = None        # conmon's own diagnostics (to syslog only)

    @classmethod
    def detect(cls, **kw: object) -> ConmonSettings:
        found = shutil.which("conmon") or "/usr/bin/conmon"
        return cls(path=found, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ContainerLayout:
    """Where conmon's files for one container (or exec session) live.

    `bundle` holds config.json; conmon creates `attach`, `ctl` and `winsz`
    there and the runtime writes `pidfile`.  Everything else defaults to the
    bundle too, so removing the bundle removes every trace.
    """

    bundle: str
    exit_dir: str
    log_path: str
    persist_dir: str

    @classmethod
    def in_bundle(cls, bundle: str, log_path: str | None = None,
                  exit_dir: str | None = None) -> ContainerLayout:
        return cls(
            bundle=bundle,
            exit_dir=exit_dir or os.path.join(bundle, "exits"),
            log_path=log_path or os.path.join(bundle, "ctr.log"),
            persist_dir=os.path.join(bundle, "persist"),
        )

    @property
    def pidfile(self) -> str:
        return os.path.join(self.bundle, "pidfile")

    @property
    def conmon_pidfile(self) -> str:
        return os.path.join(self.bundle, "conmon.pid")

    @property
    def attach_socket(self) -> str:
        return os.path.join(self.bundle, "attach")

    @property
    def ctl_fifo(self) -> str:
        return os.path.join(self.bundle, "ctl")

    @property
    def runtime_log(self) -> str:
        return os.path.join(self.bundle, "runtime.log")

    @property
    def log_keeper_pidfile(self) -> str:
        return os.path.join(self.bundle, "log-keeper.pid")

    @property
    def oom_file(self) -> str:
        return os.path.join(self.persist_dir, "oom")

    @property
    def persist_exit_file(self) -> str:
        return os.path.join(self.persist_dir, "exit")

    def exit_file(self, conmon_cid: str) -> str:
        return os.path.join(self.exit_dir, conmon_cid)


@dataclass(frozen=True)
class ContainerIO:
    """How the container's stdio is wired (Docker's OpenStdin/Tty/StdinOnce)."""

    stdin: bool = False
    tty: bool = False
    # Docker keeps an OpenStdin container's stdin open across attach
    # sessions unless StdinOnce; conmon closes it when any attach client
    # hangs up, unless told to leave it open.
    leave_stdin_open: bool = False
    # Where conmon logs the output: "file" (a k8s-file log it rotates at
    # the settings' log_size_max), "fifo" (k8s-file into a FIFO the daemon
    # drains; conmon's rotation off) or "none".
    log: Literal["file", "fifo", "none"] = "file"


@dataclass(frozen=True)
class MonitoredContainer:
    """A container created under conmon, ready for `commands.start`."""

    id: str
    pid: int
    conmon_pid: int
    layout: ContainerLayout
    runtime: OCIRuntime

    @property
    def exit_file(self) -> str:
        return self.layout.exit_file(self.id)


def runtime_args_for_conmon(runtime: OCIRuntime, runtime_log: str) -> list[str]:
    """--runtime-arg values: global args plus a log file for error texts."""
    args = runtime.global_args() + ["--log-format=json", f"--log={runtime_log}"]
    # The `=` form: glib's parser would take a separate "--root" for an option.
    return [f"--runtime-arg={a}" for a in args]


def build_conmon_args(
    settings: ConmonSettings,
    runtime: OCIRuntime,
    container_id: str,
    layout: ContainerLayout,
    io: ContainerIO,
    *,
    name: str | None = None,
    conmon_uuid: str | None = None,
    exec_process_spec: str | None = None,
    exec_attach: bool = False,
    runtime_path: str | None = None,
) -> list[str]:
    """The conmon command line (pure; unit-tested).

    For exec sessions `container_id` is the container's id (conmon passes it
    to `runtime exec`), `conmon_uuid` the session id, and `layout` the
    session's own directory, so its exit file never overwrites the
    container's.
    """
    argv = [
        settings.path,
        "--api-version", "1",
        "-c", container_id,
        "-u", conmon_uuid or container_id,
        "-r", runtime_path or runtime.create_binary,
        "-b", layout.bundle,
        "-p", layout.pidfile,
        "-n", name or container_id,
        "--exit-dir", layout.exit_dir,
        "--persist-dir", layout.persist_dir,
        # Socket at BUNDLE/attach; we connect through /proc/self/fd when the
        # path is too long for sun_path, so no symlink dir is needed.
        "--full-attach",
        "-l", "none" if io.log == "none" else f"k8s-file:{layout.log_path}",
        "--conmon-pidfile", layout.conmon_pidfile,
    ]
    if io.stdin:
        argv.append("-i")
    if io.tty:
        argv.append("-t")
    if io.leave_stdin_open:
        argv.append("--leave-stdin-open")
    if io.log == "fifo":
        # Rotating would rename a regular file over the FIFO; fsync fails on one.
        argv.append("--no-sync-log")
    elif io.log == "file" and settings.log_size_max:
        argv += ["--log-size-max", str(settings.log_size_max)]
    if settings.log_level:
        argv += ["--log-level", settings.log_level]
    if exec_process_spec:
        argv += ["-e", "--exec-process-spec", exec_process_spec]
        if exec_attach:
            argv.append("--exec-attach")
    argv += runtime_args_for_conmon(runtime, layout.runtime_log)
    return argv


def conmon_env(extra: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _prepare_dirs(layout: ContainerLayout) -> None:
    for d in (layout.exit_dir, layout.persist_dir, os.path.dirname(layout.log_path)):
        os.makedirs(d, exist_ok=True)


async def launch_conmon(argv: list[str], cwd: str, pass_fds: dict[str, int]) -> int:
    """Run conmon's launcher process; returns once it has double-forked.

    Raises SystemError_ with conmon's stderr if it fails before forking
    (bad arguments, missing runtime).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=conmon_env(pass_fds),
        cwd=cwd,  # conmon drops a stray "oom" file in its cwd: keep it ours
        pass_fds=tuple(pass_fds.values()),
        start_new_session=True,  # a ^C to the daemon's group must not reach it
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemError_(
            f"conmon failed: {err.decode(errors='replace').strip() or proc.returncode}"
        )
    return proc.returncode or 0


async def read_pid_file(path: str) -> int:
    return await asyncio.to_thread(read_pid_file_now, path)


def read_pid_file_now(path: str) -> int:
    """`read_pid_file` without a thread hop, for a pid file under the exec
    root that conmon has finished writing."""
    text = _read_text(path)
    return int(text.strip()) if text and text.strip() else 0


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


async def failure_message(layout: ContainerLayout, from_pipe: str | None) -> str:
    """The runtime's error text: conmon's copy of its stderr, else its log."""
    if from_pipe and from_pipe.strip():
        return runtime_error_message(from_pipe)
    logged = await asyncio.to_thread(_read_text, layout.runtime_log)
    return runtime_error_message(logged or "") or "runtime failed without a message"


async def create_container(
    runtime: OCIRuntime,
    settings: ConmonSettings,
    container_id: str,
    layout: ContainerLayout,
    io: ContainerIO = ContainerIO(),
    *,
    name: str | None = None,
    timeout: float = 60,
) -> MonitoredContainer:
    """`runtime create` under a new conmon; the container is in "created" state.

    Raises ContainerCreateError carrying the runtime's message when the
    runtime refuses (missing executable, bad spec, rlimits above the host's).
    """
    await asyncio.to_thread(_prepare_dirs, layout)
    await asyncio.to_thread(_remove_quiet, layout.exit_file(container_id))
    if io.log == "fifo":
        await start_log_keeper(layout)
    sync = InboundPipe()
    launched = False
    try:
        argv = build_conmon_args(settings, runtime, container_id, layout, io, name=name)
        await launch_conmon(argv, layout.persist_dir, {"_OCI_SYNCPIPE": sync.child_fd})
        launched = True
        sync.child_started()
        msg = await asyncio.wait_for(sync.receive(), timeout)
    except BaseException:
        # Timed out or cancelled mid-create: leave no monitor or runtime state.
        if launched:
            await abandon(runtime, layout, container_id)
        await stop_log_keeper(layout)
        raise
    finally:
        sync.close()
    if msg is None or msg.data <= 0:
        await stop_log_keeper(layout)
        text = await failure_message(layout, msg.message if msg else None)
        raise ContainerCreateError(text)
    conmon_pid = await read_pid_file(layout.conmon_pidfile)
    return MonitoredContainer(container_id, msg.data, conmon_pid, layout, runtime)


async def start_log_keeper(layout: ContainerLayout) -> None:
    """Make the log FIFO and the process that holds it open for the run."""
    fd = await asyncio.to_thread(logfifo.make_fifo, layout.log_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            *logfifo.keeper_argv(), stdin=fd, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        out, _ = await proc.communicate()
    finally:
        os.close(fd)
    try:
        pid = int(out.strip())
    except ValueError:
        raise SystemError_("cannot start the log FIFO's keeper process") from None
    await asyncio.to_thread(logfifo.write_keeper_pid, layout.log_keeper_pidfile, pid)
    # It holds the FIFO once it runs; conmon may start only then.
    for _ in range(2000):
        if await asyncio.to_thread(logfifo.holds, pid, layout.log_path):
            return
        await asyncio.sleep(0.001)
    await kill_conmon(pid)  # ours for certain: it has not been away from us
    await asyncio.to_thread(logfifo.remove_pidfile, layout.log_keeper_pidfile)
    raise SystemError_("the log FIFO's keeper process did not start")


async def stop_log_keeper(layout: ContainerLayout) -> None:
    """The run is over and its log FIFO drained: let the FIFO go."""
    pid = await asyncio.to_thread(logfifo.keeper_pid, layout.log_keeper_pidfile,
                                  layout.log_path)
    if pid is not None:
        await kill_conmon(pid)
    await asyncio.to_thread(logfifo.remove_pidfile, layout.log_keeper_pidfile)


def _remove_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read_exit_code(path: str) -> int | None:
    """The exit file's code, or None while the process still runs."""
    text = _read_text(path)
    if text is None or not text.strip():
        return None
    return int(text.strip())


def oom_killed(layout: ContainerLayout) -> bool:
    """conmon saw an OOM kill in the container's memory cgroup (v1 or v2)."""
    return os.path.exists(layout.oom_file)


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def wait_pid_exit(pid: int, poll_interval: float = 0.05) -> None:
    """Wait for any process (not necessarily our child) to exit.

    A pidfd becomes readable when the process exits: no polling, and the
    exit is seen within microseconds.  Falls back to polling if pidfds are
    unavailable (kernel < 5.3).
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:
        while process_alive(pid):
            await asyncio.sleep(poll_interval)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    # The daemon is a child subreaper, so conmons launched by this daemon
    # process become its children when they daemonize: reap them here, or
    # they stay zombies until the daemon exits.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks


async def wait_for_exit(container: MonitoredContainer) -> int:
    """Block until the container exits; returns its exit code (128+N for signal N).

    Uses the conmon pid (conmon writes the exit file, then exits), so it also
    works for containers created by an earlier daemon process.
    """
    await wait_pid_exit(container.conmon_pid)
    code = await asyncio.to_thread(read_exit_code, container.exit_file)
    if code is None:
        code = await asyncio.to_thread(read_exit_code, container.layout.persist_exit_file)
    if code is None:
        raise SystemError_(f"conmon for {container.id} exited without an exit code")
    return code


async def write_ctl(layout: ContainerLayout, line: str) -> None:
    """Send one control message to conmon's ctl fifo (non-blocking open)."""
    await asyncio.to_thread(_write_fifo, layout.ctl_fifo, line)


def _write_fifo(path: str, line: str) -> None:
    # O_NONBLOCK: if conmon is gone there is no reader and open fails with
    # ENXIO instead of hanging a worker thread forever.
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def resize(layout: ContainerLayout, rows: int, cols: int) -> None:
    """Resize the container's (or exec session's) terminal."""
    await write_ctl(layout, f"1 {int(rows)} {int(cols)}\n")


async def abandon(runtime: OCIRuntime, layout: ContainerLayout, container_id: str) -> None:
    """Best-effort teardown of a half-created container (cleanup paths only)."""
    with contextlib.suppress(Exception):
        pid = await read_pid_file(layout.conmon_pidfile)
        if pid > 0:
            await asyncio.wait_for(kill_conmon(pid), 10)
    with contextlib.suppress(Exception):
        await delete(runtime, container_id, force=True)


async def kill_conmon(pid: int) -> None:
    """Stop a conmon whose container is gone or stuck, or a log keeper
    (cleanup paths only)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    await wait_pid_exit(pid)
