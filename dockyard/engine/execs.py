"""`docker exec`: extra processes in a running container (moby daemon/exec.go).

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
import base64
import contextlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.attach import DetachScanner, forward_stdin, frame, parse_detach_keys
from dockyard.engine.record import Container
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
from dockyard.runtime.attach import STDERR, STDOUT
from dockyard.runtime.conmon import wait_pid_exit
from dockyard.runtime.exec import ExecSession, ExecStartError, exec_process, remove_session_dir
from dockyard.runtime.logs import iter_log_entries

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine

log = logging.getLogger("dockyard.execs")

GC_INTERVAL = 300.0          # dockerd's execCommandGC tick
EXIT_RECORD_TIMEOUT = 10.0   # how long an attached start waits for the exit code


@dataclass
class ExecConfig:
    """One exec instance (moby's container.ExecConfig)."""

    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    tty: bool
    privileged: bool
    user: str
    working_dir: str
    env: list[str]
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: bytes
    console_size: list[int] | None
    # The container run this exec belongs to: a restart makes it stale.
    container_started_at: int = 0
    running: bool = False
    exit_code: int | None = None
    can_remove: bool = False
    pid: int = 0
    session: ExecSession | None = field(default=None, repr=False)
    # Set once a start attempt has finished (process running, or failed).
    started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Set once the exit code is recorded.
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Set once no attached client reads the session's files any more.
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def command(self) -> str:
        # dockerd joins with a space even when there are no arguments, so
        # `exec_create: ls ` keeps its trailing space; clients match on it.
        return self.entrypoint + " " + " ".join(self.args)

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.entrypoint,
                "arguments": list(self.args),
                "privileged": self.privileged,
                **({"user": self.user} if self.user else {}),
            },
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": self.can_remove,
            "ContainerID": self.container_id,
            # Go encodes []byte as base64.
            "DetachKeys": base64.b64encode(self.detach_keys).decode(),
            "Pid": self.pid,
        }


def parse_create_request(body: Any) -> dict[str, Any]:
    """Validate an ExecCreateRequest body; returns it as a dict."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: exec config must be an object")
    cmd = body.get("Cmd")
    if cmd is not None and (not isinstance(cmd, list)
                            or not all(isinstance(a, str) for a in cmd)):
        raise InvalidParameter("invalid JSON: Cmd must be an array of strings")
    if not cmd:
        raise InvalidParameter("No exec command specified")
    env = body.get("Env")
    if env is not None and (not isinstance(env, list)
                            or not all(isinstance(e, str) for e in env)):
        raise InvalidParameter("invalid JSON: Env must be an array of strings")
    return body


def console_size_of(value: Any) -> list[int] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and v >= 0 for v in value)):
        raise InvalidParameter("invalid JSON: ConsoleSize must be [height, width]")
    return [int(value[0]), int(value[1])]


_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH(: No such file or "
                             r"directory)?")


def exec_start_error(runtime_message: str) -> tuple[str, int]:
    """The runtime's exec failure in dockerd's words and its exit code.

    dockerd (through containerd) reports `OCI runtime exec failed: exec
    failed: unable to start container process: exec: "x": executable file
    not found in $PATH: unknown` and sets 127 (not found) or 126 (cannot be
    invoked), else 128 (setExitCodeFromError).  The CLI exits with that code.
    """
    msg = runtime_message.strip()
    m = _CRUN_NOT_FOUND.search(msg)
    if m:
        msg = f'exec: "{m.group(1)}": executable file not found in $PATH'
    if not msg.startswith("exec failed:"):
        msg = f"exec failed: unable to start container process: {msg}"
    text = f"OCI runtime exec failed: {msg}: unknown"
    low = text.lower()
    if "permission denied" in low:
        return text, 126
    if "is a directory" in low:
        return text + ": permission denied", 126
    if "not a directory" in low:
        return text, 127
    if any(s in low for s in ("executable file not found", "no such file or directory",
                              "system cannot find the file specified")):
        return text, 127
    return text, 128


def build_exec_process(base: dict[str, Any], ec: ExecConfig, *, user: Any,
                       all_caps: list[str], console_size: list[int] | None) -> dict[str, Any]:
    """The exec's OCI process: the container's own process with the exec's
    settings over it (as dockerd merges them in ContainerExecStart)."""
    p = json.loads(json.dumps(base))   # a deep copy; the spec is plain JSON
    p["args"] = [ec.entrypoint, *ec.args]
    p["env"] = list(ec.env)
    p["cwd"] = ec.working_dir or "/"
    p["terminal"] = ec.tty
    p.pop("consoleSize", None)
    if ec.tty and console_size is not None:
        p["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if user is not None:
        p["user"] = {"uid": user.uid, "gid": user.gid,
                     "additionalGids": list(user.additional_gids)}
    if ec.privileged:
        caps = list(all_caps)
        p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    return p


@dataclass
class _Seen:
    """What one stream delivered over the attach socket: its size and head."""

    size: int = 0
    head: bytes = b""

    def add(self, data: bytes) -> None:
        if len(self.head) < 4096:
            self.head += data[:4096 - len(self.head)]
        self.size += len(data)


def missing_prefix(logged: bytes, seen: _Seen) -> bytes:
    """The part of `logged` the socket did not deliver.

    The socket misses only a prefix (the output before conmon accepted us),
    so what it delivered must be the log's tail; if not (a truncated log),
    nothing is recovered."""
    lost = len(logged) - seen.size
    if lost <= 0 or logged[lost:lost + len(seen.head)] != seen.head:
        return b""
    return logged[:lost]


def _missed_output(log_path: str, seen: dict[int, _Seen]) -> list[tuple[int, bytes]]:
    try:
        with open(log_path, "rb") as f:
            blob = f.read()
    except OSError:
        return []
    try:
        entries = iter_log_entries(blob)
    except ValueError:
        return []
    logged = {STDOUT: bytearray(), STDERR: bytearray()}
    for e in entries:
        logged[STDERR if e.stream == "stderr" else STDOUT] += e.data
    out = []
    for stream_no in (STDOUT, STDERR):
        data = missing_prefix(bytes(logged[stream_no]), seen[stream_no])
        if data:
            out.append((stream_no, data))
    return out


class ExecManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.exec_root / "execs"
        self.by_id: dict[str, ExecConfig] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self.gc_interval = GC_INTERVAL

    # ------------------------------------------------------------ helpers
    @property
    def containers(self) -> Any:
        return self.engine.containers

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
        return self.containers.by_id.get(ec.container_id)

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
            self.containers.emit(c, action, **attrs)

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
    async def create(self, ref: str, body: Any) -> str:
        req = parse_create_request(body)
        c = self.containers.get(ref)
        self._check_active(c, ref)
        self._ensure_background()
        user_spec = req.get("User") or ""
        if user_spec:
            # Fail early (moby >= 29): a bad user otherwise only shows at start.
            await self._resolve_user(c, user_spec)
        keys = b""
        if req.get("DetachKeys"):
            try:
                keys = parse_detach_keys(req["DetachKeys"])
            except InvalidParameter:
                raise SystemError_(
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
            console_size=console_size_of(req.get("ConsoleSize")),
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

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return self._lookup(exec_id).to_json()

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
        root = Path(self.containers.rootfs(c))

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
        cfg_path = Path(self.containers.bundle(c)) / "config.json"
        try:
            spec = json.loads(await asyncio.to_thread(cfg_path.read_text))
        except (OSError, ValueError) as e:
            raise SystemError_(f"cannot read the container's runtime spec: {e}") from None
        user = await self._resolve_user(c, ec.user) if ec.user else None
        return build_exec_process(spec.get("process") or {}, ec, user=user,
                                  all_caps=host_caps(self.engine.host.cap_bounding),
                                  console_size=console_size)

    async def _launch(self, ec: ExecConfig, c: Container, console_size: list[int] | None,
                      attach: bool) -> ExecSession:
        """Run the process; on failure record dockerd's exit code and raise
        the error whose text the client is shown."""
        try:
            process = await self._process(c, ec, console_size)
            session_dir = self.root / ec.id
            await asyncio.to_thread(session_dir.mkdir, parents=True, exist_ok=True)
            session = await exec_process(
                self.containers.runtime_for(c), self.containers._conmon, c.id, ec.id,
                str(session_dir), process, stdin=ec.open_stdin and attach, attach=attach)
        except ExecStartError as e:
            text, code = exec_start_error(e.runtime_message)
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

    async def start_detached(self, exec_id: str, console_size: list[int] | None) -> None:
        ec = self.get_startable(exec_id)
        c = self._claim(ec)
        ec.released.set()
        await self._launch(ec, c, console_size or ec.console_size, attach=False)

    async def start_attached(self, exec_id: str, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter, *, tty: bool,
                             console_size: list[int] | None) -> None:
        """Run the exec with its streams on a hijacked connection.

        `tty` is the start request's: it decides the framing (raw or
        multiplexed), as in dockerd.  Errors after the hijack are written
        into the stream as text, which is what the CLI prints.
        """
        multiplexed = not tty

        def out(stream_no: int, data: bytes) -> None:
            if data:
                writer.write(frame(stream_no, data) if multiplexed else data)

        ec: ExecConfig | None = None
        try:
            found = self.get_startable(exec_id)
            c = self._claim(found)
            ec = found   # ours now: release its files when done
            session = await self._launch(ec, c, console_size or ec.console_size, attach=True)
            await self._bridge(ec, c, session, reader, writer, out)
        except DockyardError as e:
            out(STDOUT, f"{e.message}\r\n".encode())
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
        finally:
            if ec is not None:
                ec.released.set()

    async def _bridge(self, ec: ExecConfig, c: Container, session: ExecSession,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      out: Any) -> None:
        conn = session.attach
        assert conn is not None
        detached = asyncio.Event()
        stdin_done = asyncio.Event()

        async def pump_in() -> None:
            # dockerd scans for detach keys only with a tty.
            scanner = DetachScanner(ec.detach_keys or parse_detach_keys(None)) if ec.tty \
                else None
            if await forward_stdin(reader, conn, scanner):
                detached.set()
                return
            if ec.tty:
                # dockerd ends a tty session's output when its stdin ends.
                stdin_done.set()
            else:
                with contextlib.suppress(ConnectionError, OSError):
                    await conn.close_stdin()

        seen = {STDOUT: _Seen(), STDERR: _Seen()}

        def wanted(stream_no: int) -> bool:
            return (stream_no == STDOUT and ec.open_stdout) or (
                stream_no == STDERR and ec.open_stderr)

        async def pump_out() -> None:
            while True:
                chunk = await conn.receive()
                if chunk is None:
                    break
                seen[chunk.stream].add(chunk.data)
                if wanted(chunk.stream):
                    out(chunk.stream, chunk.data)
                    await writer.drain()
            # conmon accepts attach clients in its main loop, which may first
            # read (and only log) the output of a quick process: send what
            # the socket missed from the session's log.
            missed = await asyncio.to_thread(_missed_output, session.layout.log_path, seen)
            for stream_no, data in missed:
                if wanted(stream_no):
                    out(stream_no, data)
            await writer.drain()

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
            for t in [out_task, *stops, *([in_task] if in_task else [])]:
                t.cancel()
            conn.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
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
        async for ev in self.engine.events.stream(None, None, filters):
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


__all__ = ["ExecConfig", "ExecManager", "build_exec_process", "exec_start_error",
           "parse_create_request"]
