"""Running extra processes in a running container through conmon (`docker exec`).

Protocol for an attached session (conmon 2.1.6, conmon.c), found by reading
the source and confirmed by the integration tests:
  1. We pass three pipes: _OCI_SYNCPIPE (conmon -> us), _OCI_STARTPIPE
     (us -> conmon) and _OCI_ATTACHPIPE (conmon -> us), and the flags
     `-e --exec-process-spec FILE --exec-attach`.
  2. conmon first blocks reading the start pipe (podman uses that pause to
     move it into a cgroup): we write one byte.
  3. conmon creates BUNDLE/attach + ctl/winsz, then writes {"data": 0} to
     the attach pipe.  Its child that will exec `runtime exec --detach`
     blocks on a second read of the start pipe.
  4. We connect to the attach socket, then write the start pipe again: only
     now does the process start, so no output is lost.
  5. Sync pipe: {"data": PID} once `runtime exec` succeeded, or
     {"data": -N, "message": "<runtime stderr>"} when it failed; later
     {"data": EXIT_CODE} (or {"data": -1, "message": "command timed out"}).
     The same code lands in PERSIST_DIR/exit and EXIT_DIR/<container id>,
     which is why every session gets its own directory.
A detached session skips the attach pipe; the start pipe is optional.
`-c` is the container's id (it goes to `runtime exec`), `-u` the session id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass, field

from dockyard.errors import SystemError_
from dockyard.runtime.attach import AttachConnection
from dockyard.runtime.commands import ContainerCreateError
from dockyard.runtime.conmon import (
    ConmonSettings,
    ContainerIO,
    ContainerLayout,
    build_conmon_args,
    failure_message,
    kill_conmon,
    launch_conmon,
    process_alive,
    read_exit_code,
    read_pid_file,
    read_pid_file_now,
    resize,
    wait_pid_exit,
)
from dockyard.runtime.pipes import InboundPipe, OutboundPipe
from dockyard.runtime.runtimes import OCIRuntime
from dockyard.util.fstree import remove_quietly


class ExecStartError(ContainerCreateError):
    """`runtime exec` failed (e.g. no such executable); carries its message."""


def exec_layout(session_dir: str) -> ContainerLayout:
    """Each exec session's files live in their own directory."""
    return ContainerLayout(
        bundle=session_dir,
        exit_dir=os.path.join(session_dir, "exits"),
        # Docker does not put exec output in the container's log; conmon
        # insists on a log driver, so it goes to a private file.
        log_path=os.path.join(session_dir, "exec.log"),
        persist_dir=session_dir,
    )


@dataclass
class ExecSession:
    """A started exec process; `wait()` gives its exact exit code."""

    session_id: str
    container_id: str
    layout: ContainerLayout
    pid: int
    conmon_pid: int
    attach: AttachConnection | None = None
    _sync: InboundPipe | None = field(default=None, repr=False)
    _exit_code: int | None = field(default=None, repr=False)

    async def wait(self) -> int:
        if self._exit_code is not None:
            return self._exit_code
        code: int | None = None
        if self._sync is not None:
            msg = await self._sync.receive()
            self._sync.close()
            self._sync = None
            if msg is not None and msg.data >= 0:
                code = msg.data
        if code is None:
            # Pipe gone (or a timeout message): conmon's exit file is the record.
            await wait_pid_exit(self.conmon_pid)
            code = await asyncio.to_thread(read_exit_code, self.layout.persist_exit_file)
        if code is None:
            raise SystemError_(f"exec session {self.session_id} ended without an exit code")
        self._exit_code = code
        return code

    async def resize(self, rows: int, cols: int) -> None:
        await resize(self.layout, rows, cols)

    def close(self) -> None:
        if self.attach is not None:
            self.attach.close()
        if self._sync is not None:
            self._sync.close()
            self._sync = None


def write_process_spec(path: str, process: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(process, f)
    os.rename(tmp, path)


async def exec_process(
    runtime: OCIRuntime,
    settings: ConmonSettings,
    container_id: str,
    session_id: str,
    session_dir: str,
    process: dict,
    *,
    stdin: bool = False,
    attach: bool = True,
    timeout: float = 60,
) -> ExecSession:
    """Start `process` (an OCI process object) in the running container.

    `process["terminal"]` selects a pty; `stdin` pipes the attach socket's
    input to the process.  With attach=True the session's `attach` is
    connected before the process starts, so it sees every byte.  Raises
    ExecStartError with the runtime's message if the process cannot start.
    """
    io = ContainerIO(stdin=stdin, tty=bool(process.get("terminal")))
    layout = exec_layout(session_dir)
    spec_path = os.path.join(session_dir, "process.json")

    def prepare() -> None:
        os.makedirs(layout.exit_dir, exist_ok=True)
        write_process_spec(spec_path, process)

    prepare()   # a directory and a small file under the exec root: no thread hop
    argv = build_conmon_args(
        settings, runtime, container_id, layout, io,
        conmon_uuid=session_id, exec_process_spec=spec_path, exec_attach=attach,
        # `exec` needs no cgroup tricks: it joins the existing container.
        runtime_path=runtime.path,
    )
    sync, start = InboundPipe(), OutboundPipe()
    attach_pipe = InboundPipe() if attach else None
    fds = {"_OCI_SYNCPIPE": sync.child_fd, "_OCI_STARTPIPE": start.child_fd}
    if attach_pipe is not None:
        fds["_OCI_ATTACHPIPE"] = attach_pipe.child_fd
    conn: AttachConnection | None = None
    ok = False
    try:
        # conmon blocks on its first start-pipe read before double-forking,
        # so the byte must be in the pipe before we wait for the launcher.
        start.signal()
        await launch_conmon(argv, session_dir, fds)
        for p in (sync, start, attach_pipe):
            if p is not None:
                p.child_started()
        if attach_pipe is not None:
            ready = await asyncio.wait_for(attach_pipe.receive(), timeout)
            attach_pipe.close()
            if ready is None:
                # conmon died before the socket existed; the sync pipe may say why.
                failed = await asyncio.wait_for(sync.receive(), timeout)
                raise ExecStartError(
                    await failure_message(layout, failed.message if failed else None)
                )
            conn = await AttachConnection.connect(layout.attach_socket)
            start.signal()
        msg = await asyncio.wait_for(sync.receive(), timeout)
        if msg is None or msg.data <= 0:
            raise ExecStartError(await failure_message(layout, msg.message if msg else None))
        conmon_pid = read_pid_file_now(layout.conmon_pidfile)
        ok = True
        return ExecSession(session_id, container_id, layout, msg.data, conmon_pid,
                           attach=conn, _sync=sync)
    finally:
        start.close()
        if attach_pipe is not None:
            attach_pipe.close()
        if not ok:
            sync.close()
            if conn is not None:
                conn.close()
            # Closing the start pipe alone would let the process run
            # unattached (conmon treats EOF like a start byte); kill conmon,
            # whose waiting child dies with it (PDEATHSIG).
            with contextlib.suppress(Exception):
                pid = await read_pid_file(layout.conmon_pidfile)
                if pid > 0 and process_alive(pid):
                    await asyncio.wait_for(kill_conmon(pid), 10)


async def remove_session_dir(session_dir: str) -> None:
    await asyncio.to_thread(remove_quietly, session_dir, "exec session", unmount=True)
