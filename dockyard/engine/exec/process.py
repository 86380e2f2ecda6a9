"""One exec instance and the pure rules around it (moby daemon/exec.go).

`ExecConfig` is the record dockerd keeps for an exec; the functions check a
create request, build the exec's OCI process from the container's, put a
runtime failure in dockerd's words with its exit code, and recover output a
fast process wrote before the attach socket accepted us.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.backend import ExecStartOptions
from dockyard.errors import InvalidParameter
from dockyard.oci.schema import decode_exec_options, decode_exec_start
from dockyard.oci.validate import check_process_strings
from dockyard.runtime.attach import STDERR, STDOUT
from dockyard.runtime.commands import MOUNT_HINT, process_error_in_runc_words
from dockyard.runtime.exec import ExecSession
from dockyard.runtime.logs import LogEntry, iter_log_entries


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
    """An exec create body as dockerd decodes it (container.ExecOptions), with
    the strings the process gets checked as create checks a container's."""
    req = decode_exec_options(body)
    if not req.get("Cmd"):
        raise InvalidParameter("No exec command specified")
    check_process_strings(req)
    return req


def parse_start_request(body: Any, api_version: tuple[int, int]) -> ExecStartOptions:
    """An exec start body (container.ExecStartOptions).  The console size
    counts only with a tty and from API 1.42 on, as in dockerd."""
    req = decode_exec_start(body)
    tty = bool(req.get("Tty"))
    console = req.get("ConsoleSize") if tty and api_version >= (1, 42) else None
    return ExecStartOptions(tty=tty, console_size=console, detach=bool(req.get("Detach")))


def exec_start_error(runtime_message: str, argv0: str = "") -> tuple[str, int]:
    """The runtime's exec failure in dockerd's words and its exit code.

    dockerd (through containerd) reports `OCI runtime exec failed: exec
    failed: unable to start container process: exec: "x": executable file
    not found in $PATH: unknown`, and the CLI exits with the exec's code:
    127 when the command is not found, 126 when it cannot be invoked (not
    executable, a directory, a working directory that is missing or not a
    directory), else 128 (moby's setExitCodeFromError; for the working
    directory see the README).
    """
    msg = process_error_in_runc_words(runtime_message.strip(), argv0)
    if not msg.startswith("exec failed:"):
        msg = f"exec failed: unable to start container process: {msg}"
    text = f"OCI runtime exec failed: {msg}: unknown"
    low = text.lower()
    if "not a directory" in low:
        text = f"{text}: {MOUNT_HINT}"
    if "chdir to cwd" in low or "permission denied" in low:
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


# the session log is read this much at a time
LOG_BLOCK = 1 << 20


@dataclass
class Seen:
    """What one stream delivered over the attach socket: its size and head."""

    size: int = 0
    head: bytes = b""

    def add(self, data: bytes) -> None:
        if len(self.head) < 4096:
            self.head += data[:4096 - len(self.head)]
        self.size += len(data)


def missing_prefix(logged: bytes, seen: Seen, total: int | None = None) -> bytes:
    """The part of the logged output the socket did not deliver.

    The socket misses only a prefix (the output before conmon accepted us),
    so what it delivered must be the log's tail; if not (a truncated log),
    nothing is recovered.  `logged` may be just the start of the output
    when `total` gives its whole size."""
    lost = (len(logged) if total is None else total) - seen.size
    if lost <= 0 or logged[lost:lost + len(seen.head)] != seen.head:
        return b""
    return logged[:lost]


def _log_entries(log_path: str) -> Iterator[list[LogEntry]]:
    """The session log's complete entries, a block at a time."""
    with open(log_path, "rb") as f:
        rest = b""
        while block := f.read(LOG_BLOCK):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            yield iter_log_entries(block[:cut])


def missed_output(log_path: str, seen: dict[int, Seen]) -> list[tuple[int, bytes]]:
    """What the session's log holds before the output the socket delivered.

    Read twice, a block at a time, never whole (it may hold up to conmon's
    log size limit): once to count each stream's bytes, then, only when
    the socket missed some, to take the missed start and the head to check."""
    def stream_of(e: LogEntry) -> int:
        return STDERR if e.stream == "stderr" else STDOUT

    try:
        total = {STDOUT: 0, STDERR: 0}
        for entries in _log_entries(log_path):
            for e in entries:
                total[stream_of(e)] += len(e.data)
        keep = {n: total[n] - seen[n].size + len(seen[n].head) if total[n] > seen[n].size
                else 0 for n in total}
        if not any(keep.values()):
            return []
        logged = {STDOUT: bytearray(), STDERR: bytearray()}
        for entries in _log_entries(log_path):
            for e in entries:
                n = stream_of(e)
                if len(logged[n]) < keep[n]:
                    logged[n] += e.data
            if all(len(logged[n]) >= keep[n] for n in logged):
                break
    except (OSError, ValueError):
        return []
    out = []
    for stream_no in (STDOUT, STDERR):
        data = missing_prefix(bytes(logged[stream_no]), seen[stream_no], total[stream_no])
        if data:
            out.append((stream_no, data))
    return out
