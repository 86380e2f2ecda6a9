"""The OCI runtime CLI verbs the engine needs once conmon has created a container.

Every call goes through `OCIRuntime.command` so the engine's private
`--root` and any daemon.json runtimeArgs are always passed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal as signal_module
import tempfile

from dockyard.errors import Conflict, NotFound, SystemError_
from dockyard.runtime.process import CommandResult, run
from dockyard.runtime.runtimes import OCIRuntime

# Texts runc and crun print when the container is unknown to them.
_MISSING_MARKERS = ("does not exist", "not found", "no such file or directory")
# Texts for "exists but is not running" (runc: "container not running",
# "cannot start a container that has stopped"; crun: "open pidfd: No such
# process", "... is not running").
_NOT_RUNNING_MARKERS = ("not running", "no such process", "process already finished",
                        "has stopped")


class RuntimeCommandError(SystemError_):
    """A runtime CLI call failed; `message` is the runtime's own text."""

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class RuntimeContainerMissing(NotFound):
    """The runtime has no state for this container id."""


class ContainerNotRunning(Conflict):
    """kill/pause/exec on a container whose process has already exited."""

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ContainerCreateError(SystemError_):
    """The runtime refused to create the container.

    `runtime_message` is the runtime's own error text, e.g.
    `exec: "nosuch": executable file not found in $PATH` (runc) or
    "executable file `nosuch` not found in $PATH: No such file or directory"
    (crun); `start_error_exit_code` maps it to Docker's 126/127 convention.
    """

    def __init__(self, runtime_message: str) -> None:
        super().__init__(runtime_message)
        self.runtime_message = runtime_message



_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH(: No such file or "
                             r"directory)?")
_CRUN_NOT_RUNNABLE = re.compile(r"open executable: (Permission denied|Operation not permitted)")
_CRUN_CHDIR = re.compile(r"chdir `(.*)`: (No such file or directory|Not a directory|"
                         r"Permission denied)")
# moby's setExitCodeFromError adds this to any "not a directory" failure
MOUNT_HINT = ("Are you trying to mount a directory onto a file (or vice-versa)? Check if the "
              "specified host path exists and is the expected type")


def process_error_in_runc_words(message: str, argv0: str = "") -> str:
    """A process that could not be started, in runc's words (which dockerd
    passes on and clients match on); other messages come back unchanged.

    crun says "executable file `x` not found in $PATH", runc `exec: "x":
    executable file not found in $PATH`, or for a path (a name with a
    slash, which is not searched) `exec: "/x": stat /x: no such file or
    directory`.  crun's "open executable: Permission denied" (a file that is
    not executable, a directory) is runc's `exec: "/x": permission denied`;
    for a bare name runc's PATH search skips what it cannot run, so that is
    "not found".  crun's "chdir `/w`: ..." is runc's `chdir to cwd ("/w")
    set in config.json failed: ...`.
    """
    m = _CRUN_NOT_FOUND.search(message)
    if m is not None:
        name = m.group(1)
        if "/" in name:
            return f'exec: "{name}": stat {name}: no such file or directory'
        return f'exec: "{name}": executable file not found in $PATH'
    if _CRUN_NOT_RUNNABLE.search(message) is not None and argv0:
        if "/" in argv0:
            return f'exec: "{argv0}": permission denied'
        return f'exec: "{argv0}": executable file not found in $PATH'
    m = _CRUN_CHDIR.search(message)
    if m is not None:
        return (f'chdir to cwd ("{m.group(1)}") set in config.json failed: '
                f"{m.group(2).lower()}")
    return message


def start_error_exit_code(message: str) -> int | None:
    """Docker's exit codes for a process that could not be started.

    127: the executable does not exist; 126: it exists but cannot be run.
    None when the failure is not about the executable (then it is a 500).
    """
    text = message.lower()
    if "executable file not found" in text or (
        "executable file" in text and "not found" in text
    ):
        return 127
    if "no such file or directory" in text and ("exec" in text or "stat" in text):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return None


def signal_name(sig: int | str) -> str:
    """Normalise a signal for the runtime CLI: 9, "9", "KILL", "SIGKILL" -> "KILL"."""
    if isinstance(sig, int) or str(sig).isdigit():
        try:
            return signal_module.Signals(int(sig)).name.removeprefix("SIG")
        except ValueError:
            # realtime signals have no name in Python; runtimes take numbers
            return str(int(sig))
    name = str(sig).upper()
    return name.removeprefix("SIG")


async def _call(runtime: OCIRuntime, *sub: str, timeout: float = 60,
                allow_missing: bool = False, container_id: str = "") -> CommandResult:
    res = await run(runtime.command(*sub), timeout=timeout)
    if res.returncode != 0:
        text = res.error_text() or f"{runtime.name} {sub[0]}: exit status {res.returncode}"
        low = text.lower()
        if any(m in low for m in _MISSING_MARKERS):
            if allow_missing:
                return res
            raise RuntimeContainerMissing(text)
        if container_id and any(m in low for m in _NOT_RUNNING_MARKERS):
            raise ContainerNotRunning(f"Container {container_id} is not running", res)
        raise RuntimeCommandError(text, res)
    return res


async def start(runtime: OCIRuntime, container_id: str) -> None:
    await _call(runtime, "start", container_id, container_id=container_id)


async def kill(runtime: OCIRuntime, container_id: str, sig: int | str = "TERM",
               all_processes: bool = False) -> None:
    """Send a signal to the container's init (or all its processes).

    Raises ContainerNotRunning (409) when it has already exited: a kill
    racing the container's own exit is normal and the engine decides.
    """
    args = ["kill"] + (["--all"] if all_processes else [])
    await _call(runtime, *args, container_id, signal_name(sig), timeout=30,
                container_id=container_id)


async def delete(runtime: OCIRuntime, container_id: str, force: bool = False) -> None:
    """Remove the runtime's state; a container it never knew is not an error.

    With our own state directory, a container without an entry there is
    one the runtime has forgotten already (the exit of a run released it,
    and a removal releases again): no call is made."""
    if runtime.root and not os.path.lexists(os.path.join(runtime.root, container_id)):
        return
    args = ["delete"] + (["--force"] if force else []) + [container_id]
    await _call(runtime, *args, allow_missing=True)


async def pause(runtime: OCIRuntime, container_id: str) -> None:
    await _call(runtime, "pause", container_id, container_id=container_id)


async def resume(runtime: OCIRuntime, container_id: str) -> None:
    await _call(runtime, "resume", container_id, container_id=container_id)


async def state(runtime: OCIRuntime, container_id: str) -> dict:
    """The runtime's `state` JSON: {"status": "created|running|paused|stopped", "pid": ...}."""
    res = await _call(runtime, "state", container_id, timeout=30)
    return json.loads(res.stdout)


async def ps(runtime: OCIRuntime, container_id: str) -> list[int]:
    """Host pids of every process in the container."""
    res = await _call(runtime, "ps", "--format", "json", container_id, timeout=30)
    out = res.stdout.strip()
    return [int(p) for p in json.loads(out)] if out and out != b"null" else []


async def update(runtime: OCIRuntime, container_id: str, resources: dict) -> None:
    """Apply an OCI `linux.resources` object to a running container."""
    fd, path = await asyncio.to_thread(tempfile.mkstemp, prefix="dockyard-update-",
                                       suffix=".json")
    try:
        await asyncio.to_thread(_write_and_close, fd, json.dumps(resources).encode())
        await _call(runtime, "update", "--resources", path, container_id)
    finally:
        await asyncio.to_thread(_unlink_quiet, path)


async def list_containers(runtime: OCIRuntime) -> list[dict]:
    """`list --format json`: what the runtime still has state for (for cleanup)."""
    res = await _call(runtime, "list", "--format", "json", timeout=30)
    out = res.stdout.strip()
    return json.loads(out) if out and out != b"null" else []


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
