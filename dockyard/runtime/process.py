"""Running short-lived helper commands (runtime CLI calls) from asyncio."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    def error_text(self) -> str:
        """The runtime's own error message, without logrus decoration.

        runc prints `time="..." level=error msg="runc create failed: ..."`
        (or JSON lines with --log-format=json); crun prints the bare text.
        The message is what users and the engine's mapping rules read.
        """
        return runtime_error_message(self.stderr.decode(errors="replace"))


def runtime_error_message(text: str) -> str:
    """Extract the human message from a runtime's stderr or log output."""
    messages: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                messages.append(line)
                continue
            if rec.get("level") in ("error", "fatal", "panic"):
                messages.append(str(rec.get("msg", "")))
            continue
        messages.append(_strip_logrus(line))
    return "\n".join(m for m in messages if m)


def _strip_logrus(line: str) -> str:
    """`time="..." level=error msg="text"` -> `text` (other lines unchanged)."""
    marker = ' msg="'
    if not line.startswith("time=") or marker not in line:
        return line
    body = line.split(marker, 1)[1]
    body = body.removesuffix('"')
    try:
        return json.loads(f'"{body}"')
    except ValueError:
        return body.replace('\\"', '"')


async def run(
    argv: list[str],
    *,
    input: bytes | None = None,
    timeout: float | None = 60,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run a command to completion; never raises for a non-zero status.

    OSError (e.g. the binary is missing) propagates.  On timeout the process
    is killed and asyncio.TimeoutError raised.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return CommandResult(tuple(argv), proc.returncode or 0, out, err)
