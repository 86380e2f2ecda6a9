"""`ExecService`: `docker exec`, extra processes in a running container.

An exec is created (recorded, not run), then started once, attached through
a hijacked connection or detached.  Each started exec runs under its own
conmon session (`runtime/exec.py`) in a private directory, removed when the
process ends.  Like dockerd, the records live in memory only: the container
lists an exec while it is created or running; the daemon keeps finished ones
for inspection until the container is removed or a garbage pass (two 5
minute ticks) drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from dockyard.backend import STDERR, STDOUT, ExecStartOptions, OutputSink, StdinSource
from dockyard.engine.containers.attach import DetachScanner, forward_stdin, parse_detach_keys
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.runner import ContainerRunner
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.events import EventBus
from dockyard.engine.exec.process import (
    ExecConfig,
    Seen,
    build_exec_process,
    exec_start_error,
    missed_output,
    parse_create_request,
    parse_start_request,
)
from dockyard.engine.host.environment import HostEnv
from dockyard.errors import (
    Conflict,
    DockyardError,
    InvalidParameter,
    NotFound,
    SystemError_,
)
from dockyard.oci.caps import host_caps
from dockyard.oci.spec import container_env, replace_or_append_env
from dockyard.oci.users import resolve_user
from dockyard.runtime.conmon import wait_pid_exit
from dockyard.runtime.exec import ExecSession, ExecStartError, exec_process, remove_session_dir

log = logging.getLogger("dockyard.execs")

GC_INTERVAL = 300.0          # dockerd's execCommandGC tick
EXIT_RECORD_TIMEOUT = 10.0   # how long an attached start waits for the exit code
INLINE_LOG_BYTES = 64 << 10  # a session log this small is read without a worker thread


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class ExecService:
    def __init__(self, store: ContainerStore, runner: ContainerRunner, host: HostEnv,
                 events: EventBus) -> None:
        self.store = store
        self.runner = runner
        self.host = host
        self.events = events
        self.root = host.exec_root / "execs"
        self.by_id: dict[str, ExecConfig] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self.gc_interval = GC_INTERVAL

    # ------------------------------------------------------------ helpers
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _ensure_background(self) -> None:
        """Start the GC and the container-event watcher once a loop runs."""
        if self._background:
            return
        self._background = [asyncio.ensure_future(self._gc_loop()),
                            asyncio.ensure_future(self._watch_containers())]

    async def close(self) -> None:
        for t in self._background + list(self._tasks):
            t.cancel()
        self._background = []

    def _container_of(self, ec: ExecConfig) -> Container | None:
        return self.store.find(ec.container_id)

    def _unregister_from_container(self, ec: ExecConfig) -> None:
        c = self._container_of(ec)
        if c is not None:
            with contextlib.suppress(ValueError):
                c.exec_ids.remove(ec.id)

    def _forget(self, ec: ExecConfig) -> None:
        self._unregister_from_container(ec)
        self.by_id.pop(ec.id, None)

    def _emit(self, c: Container | None, action: str, **attrs: str) -> None:
        if c is not None:
            self.store.emit(c, action, **attrs)

    @staticmethod
    def _check_active(c: Container, ref: str) -> None:
        """dockerd's getActiveContainer / getExecConfig state checks."""
        st = c.state.status
        if st == "restarting":
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if st == "paused":
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")

    # ------------------------------------------------------------ create
    async def create(self, ref: str, body: Any, api_version: tuple[int, int]) -> str:
        req = parse_create_request(body)
        if api_version < (1, 42):
            req.pop("ConsoleSize", None)    # not in the API before 1.42
        c = self.store.get(ref)
        self._check_active(c, ref)
        self._ensure_background()
        # an unknown user is the start's failure (exit code 126, the text on
        # the exec's output), as in Docker up to 28.1; see the README
        user_spec = req.get("User") or ""
        keys = b""
        if req.get("DetachKeys"):
            try:
                keys = parse_detach_keys(req["DetachKeys"])
            except InvalidParameter:
                raise InvalidParameter(
                    f"Invalid escape keys ({req['DetachKeys']}) provided") from None
        cmd: list[str] = req["Cmd"]
        tty = bool(req.get("Tty"))
        env = replace_or_append_env(container_env({**c.config, "Tty": tty}), req.get("Env") or [])
        exec_id = secrets.token_hex(32)
        while exec_id in self.by_id:
            exec_id = secrets.token_hex(32)
        ec = ExecConfig(
            id=exec_id, container_id=c.id, entrypoint=cmd[0], args=list(cmd[1:]), tty=tty,
            privileged=bool(req.get("Privileged")),
            user=user_spec or (c.config.get("User") or ""),
            working_dir=req.get("WorkingDir") or (c.config.get("WorkingDir") or ""),
            env=env, open_stdin=bool(req.get("AttachStdin")),
            open_stdout=bool(req.get("AttachStdout")),
            open_stderr=bool(req.get("AttachStderr")), detach_keys=keys,
            console_size=req.get("ConsoleSize"),
            container_started_at=c.state.started_at,
        )
        self.by_id[exec_id] = ec
        c.exec_ids.append(exec_id)
        self._emit(c, f"exec_create: {ec.command}", execID=exec_id)
        return exec_id

    # ------------------------------------------------------------ lookup
    def _lookup(self, exec_id: str) -> ExecConfig:
        ec = self.by_id.get(exec_id)
        if ec is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        c = self._container_of(ec)
        if c is None or self._stale(ec, c):
            self._forget(ec)
            raise NotFound(f"No such exec instance: {exec_id}")
        return ec

    @staticmethod
    def _stale(ec: ExecConfig, c: Container) -> bool:
        """dockerd drops never-started execs when their container stops."""
        if ec.running or ec.exit_code is not None:
            return False
        return not c.state.running or c.state.started_at != ec.container_started_at

    def get_startable(self, exec_id: str) -> ExecConfig:
        """dockerd's getExecConfig: the exec exists and its container runs."""
        ec = self._lookup(exec_id)
        c = self._container_of(ec)
        assert c is not None
        self._check_active(c, c.id)
        return ec

    def check_startable(self, exec_id: str) -> None:
        self.get_startable(exec_id)

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return self._lookup(exec_id).to_json()

    @staticmethod
    def start_options(body: Any, api_version: tuple[int, int]) -> ExecStartOptions:
        return parse_start_request(body, api_version)

    # ------------------------------------------------------------ start
    def _claim(self, ec: ExecConfig) -> Container:
        if ec.exit_code is not None:
            raise Conflict(f"exec command {ec.id} has already run")
        if ec.running:
            raise Conflict(f"exec command {ec.id} is already running")
        c = self._container_of(ec)
        if c is None:
            raise NotFound(f"No such exec instance: {ec.id}")
        ec.running = True
        self._emit(c, f"exec_start: {ec.command}", execID=ec.id)
        return c

    async def _resolve_user(self, c: Container, spec: str) -> Any:
        root = Path(self.store.rootfs(c))

        def read(name: str) -> str | None:
            try:
                return (root / "etc" / name).read_text(errors="replace")
            except OSError:
                return None

        passwd, group = await asyncio.to_thread(read, "passwd"), await asyncio.to_thread(
            read, "group")
        return resolve_user(spec, passwd, group, c.host_config.get("GroupAdd"))

    async def _process(self, c: Container, ec: ExecConfig,
                       console_size: list[int] | None) -> dict[str, Any]:
        cfg_path = Path(self.store.bundle(c)) / "config.json"
        try:
            # a few kilobytes of our own under the exec root: no thread hop
            spec = json.loads(cfg_path.read_bytes())
        except (OSError, ValueError) as e:
            raise SystemError_(f"cannot read the container's runtime spec: {e}") from None
        user = await self._resolve_user(c, ec.user) if ec.user else None
        return build_exec_process(spec.get("process") or {}, ec, user=user,
                                  all_caps=host_caps(self.host.facts.cap_bounding),
                                  console_size=console_size)

    async def _launch(self, ec: ExecConfig, c: Container, console_size: list[int] | None,
                      attach: bool) -> ExecSession:
        """Run the process; on failure record dockerd's exit code and raise
        the error whose text the client is shown."""
        try:
            process = await self._process(c, ec, console_size)
            session_dir = self.root / ec.id
            session_dir.mkdir(parents=True, exist_ok=True)   # under the exec root
            session = await exec_process(
                self.runner.runtime_for(c), self.runner.conmon, c.id, ec.id,
                str(session_dir), process, stdin=ec.open_stdin and attach, attach=attach)
        except ExecStartError as e:
            text, code = exec_start_error(e.runtime_message, ec.entrypoint)
            await self._start_failed(ec, c, code)
            raise InvalidParameter(text) from None
        except DockyardError:
            await self._start_failed(ec, c, 126)
            raise
        except (OSError, TimeoutError) as e:
            await self._start_failed(ec, c, 126)
            raise SystemError_(f"exec failed: {e}") from None
        ec.session = session
        ec.pid = session.pid
        ec.started.set()
        self._spawn(self._wait_exit(ec, c, session))
        return session

    async def _start_failed(self, ec: ExecConfig, c: Container, code: int) -> None:
        ec.running = False
        ec.exit_code = code
        self._unregister_from_container(ec)
        ec.started.set()
        ec.done.set()
        self._emit(c, "exec_die", execID=ec.id, exitCode=str(code))
        await remove_session_dir(str(self.root / ec.id))

    async def _wait_exit(self, ec: ExecConfig, c: Container, session: ExecSession) -> None:
        try:
            code = await session.wait()
        except DockyardError as e:
            log.error("exec %s: %s", ec.id[:12], e.message)
            code = 126
        ec.exit_code = code
        ec.running = False
        self._unregister_from_container(ec)
        ec.done.set()
        self._emit(c, "exec_die", execID=ec.id, exitCode=str(code))
        session.close()
        # conmon reports the code before it has finished with its files:
        # remove the directory only once it is gone, or it leaves fifos behind.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_pid_exit(session.conmon_pid), 30)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ec.released.wait(), 30)
        await remove_session_dir(str(self.root / ec.id))

    async def start_detached(self, exec_id: str, opts: ExecStartOptions) -> None:
        ec = self.get_startable(exec_id)
        c = self._claim(ec)
        ec.released.set()
        await self._launch(ec, c, opts.console_size or ec.console_size, attach=False)

    async def start_attached(self, exec_id: str, opts: ExecStartOptions, stdin: StdinSource,
                             out: OutputSink) -> None:
        """Run the exec with the client's streams.  Errors after the takeover
        are written into the stream as text, which is what the CLI prints."""
        ec: ExecConfig | None = None
        try:
            found = self.get_startable(exec_id)
            c = self._claim(found)
            ec = found   # ours now: release its files when done
            session = await self._launch(ec, c, opts.console_size or ec.console_size,
                                         attach=True)
            await self._bridge(ec, c, session, stdin, out)
        except DockyardError as e:
            out.write(STDOUT, f"{e.message}\r\n".encode())
            with contextlib.suppress(ConnectionError, OSError):
                await out.drain()
        finally:
            if ec is not None:
                ec.released.set()

    async def _bridge(self, ec: ExecConfig, c: Container, session: ExecSession,
                      stdin: StdinSource, out: OutputSink) -> None:
        conn = session.attach
        assert conn is not None
        detached = asyncio.Event()
        stdin_done = asyncio.Event()

        async def pump_in() -> None:
            # dockerd scans for detach keys only with a tty.
            scanner = DetachScanner(ec.detach_keys or parse_detach_keys(None)) if ec.tty \
                else None
            if await forward_stdin(stdin, conn, scanner):
                detached.set()
                return
            if ec.tty:
                # dockerd ends a tty session's output when its stdin ends.
                stdin_done.set()
            else:
                with contextlib.suppress(ConnectionError, OSError):
                    await conn.close_stdin()

        seen = {STDOUT: Seen(), STDERR: Seen()}

        def wanted(stream_no: int) -> bool:
            return (stream_no == STDOUT and ec.open_stdout) or (
                stream_no == STDERR and ec.open_stderr)

        async def pump_out() -> None:
            while True:
                batch = await conn.receive_batch()
                if batch is None:
                    break
                for chunk in batch:
                    seen[chunk.stream].add(chunk.data)
                    if wanted(chunk.stream) and chunk.data:
                        out.write(chunk.stream, chunk.data)
                await out.drain()
            # conmon accepts attach clients in its main loop, which may first
            # read (and only log) the output of a quick process: send what
            # the socket missed from the session's log.
            log_path = session.layout.log_path
            if _size(log_path) <= INLINE_LOG_BYTES:
                missed = missed_output(log_path, seen)
            else:
                missed = await asyncio.to_thread(missed_output, log_path, seen)
            for stream_no, data in missed:
                if wanted(stream_no):
                    out.write(stream_no, data)
            await out.drain()

        out_task = asyncio.ensure_future(pump_out())
        in_task = asyncio.ensure_future(pump_in()) if ec.open_stdin else None
        stops = [asyncio.ensure_future(detached.wait()), asyncio.ensure_future(stdin_done.wait())]
        try:
            await asyncio.wait([out_task, *stops], return_when=asyncio.FIRST_COMPLETED)
            if out_task.done() and out_task.exception() is None:
                # Output ended because the process did: the client reads the
                # exit code right after the stream closes, so record it first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ec.done.wait()), EXIT_RECORD_TIMEOUT)
        finally:
            tasks = [out_task, *stops, *([in_task] if in_task else [])]
            for t in tasks:
                t.cancel()
            # the socket's fd leaves the event loop before it is closed
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.close()
            with contextlib.suppress(ConnectionError, OSError):
                await out.drain()
        if detached.is_set():
            self._emit(c, "exec_detach", execID=ec.id)

    # ------------------------------------------------------------ resize
    async def resize(self, exec_id: str, height: int, width: int) -> None:
        ec = self.get_startable(exec_id)
        try:
            await asyncio.wait_for(ec.started.wait(), 10)
        except TimeoutError:
            raise SystemError_("timeout waiting for exec session ready") from None
        if ec.session is None:
            raise InvalidParameter("exec process is not started")
        if ec.exit_code is not None:
            return
        try:
            await ec.session.resize(height, width)
        except OSError:
            pass   # the process ended between the check and the write

    # ------------------------------------------------------------ clean-up
    async def _watch_containers(self) -> None:
        """Follow container events: a stopped container's never-started
        execs and a removed container's execs go away, as in dockerd."""
        filters = {"type": ["container"], "event": ["die", "destroy"]}
        async for ev in self.events.stream(None, None, filters):
            for ec in [e for e in self.by_id.values() if e.container_id == ev.actor_id]:
                if ev.action == "destroy":
                    self.by_id.pop(ec.id, None)
                elif not ec.running and ec.exit_code is None:
                    self._forget(ec)

    async def _gc_loop(self) -> None:
        """dockerd's execCommandGC: a finished exec is marked on one tick
        and deleted on the next."""
        while True:
            await asyncio.sleep(self.gc_interval)
            self.gc_once()

    def gc_once(self) -> int:
        cleaned = 0
        for ec in list(self.by_id.values()):
            c = self._container_of(ec)
            live = c is not None and ec.id in c.exec_ids
            if ec.can_remove:
                self.by_id.pop(ec.id, None)
                cleaned += 1
            elif not live:
                ec.can_remove = True
        return cleaned
