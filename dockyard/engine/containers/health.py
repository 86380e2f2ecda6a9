"""Health checks: Config.Healthcheck probes run as execs (dockerd's rules).

- Test is ["NONE"] (no checks, no Health in inspect), ["CMD", args...],
  ["CMD-SHELL", "cmd"] (run with Config.Shell or /bin/sh -c); any other
  form is ignored with a warning, as dockerd does.
- Each probe is an exec with the container's own process settings (user,
  env, cwd, capabilities) from its bundle's config.json; stdout and stderr
  together, kept to 4096 bytes with "..." when cut.
- Timeout kills the probe: ExitCode -1 and "Health check exceeded
  timeout (<go duration>)".  An exec that cannot start is a failure with
  ExitCode -1 and the error as Output.
- Scheduling (moby monitor): the first probe one interval after start;
  the next one interval after the previous ended; during StartPeriod
  StartInterval while still starting, and never past the end of the
  start period.
- A pass makes the container healthy (streak 0).  A failure while
  starting and still inside StartPeriod does not count; otherwise the
  streak grows and reaching Retries makes it unhealthy.  Only a status
  change emits `health_status: <status>`.
- The monitor stops when the container exits (status becomes unhealthy,
  as dockerd does for compatibility) and is rebuilt at every start and
  after a daemon restart (status back to starting, log kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Any

from dockyard.engine.containers.record import Container, HealthState
from dockyard.engine.containers.runner import ContainerRunner
from dockyard.engine.containers.store import ContainerStore
from dockyard.runtime.conmon import kill_conmon, process_alive, wait_pid_exit
from dockyard.runtime.exec import ExecStartError, exec_process, remove_session_dir
from dockyard.util.timefmt import rfc3339

log = logging.getLogger("dockyard.health")

NS = 1_000_000_000
DEFAULT_INTERVAL_NS = 30 * NS
DEFAULT_TIMEOUT_NS = 30 * NS
DEFAULT_START_PERIOD_NS = 0
DEFAULT_START_INTERVAL_NS = 5 * NS
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096
MAX_LOG_ENTRIES = 5
# dockerd gives a wedged exec this long to start, separately from Timeout.
EXEC_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Probe:
    argv: list[str]
    interval_ns: int
    timeout_ns: int
    start_period_ns: int
    start_interval_ns: int
    retries: int


def probe_of(config: dict[str, Any]) -> Probe | None:
    """The probe a container's Config asks for, or None (no checks)."""
    hc = config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        argv = list(test[1:])
    elif test[0] == "CMD-SHELL":
        argv = [*(config.get("Shell") or ["/bin/sh", "-c"]), *test[1:]]
    else:
        log.warning("Unknown healthcheck type '%s' (expected 'CMD')", test[0])
        return None
    if not argv:
        return None
    return Probe(
        argv=argv,
        interval_ns=int(hc.get("Interval") or 0) or DEFAULT_INTERVAL_NS,
        timeout_ns=int(hc.get("Timeout") or 0) or DEFAULT_TIMEOUT_NS,
        start_period_ns=int(hc.get("StartPeriod") or 0) or DEFAULT_START_PERIOD_NS,
        start_interval_ns=int(hc.get("StartInterval") or 0) or DEFAULT_START_INTERVAL_NS,
        retries=int(hc.get("Retries") or 0) if int(hc.get("Retries") or 0) > 0
        else DEFAULT_RETRIES,
    )


def next_wait_ns(probe: Probe, elapsed_ns: int, status: str) -> int:
    """Time until the next probe (moby monitor's getInterval)."""
    if elapsed_ns >= probe.start_period_ns:
        return probe.interval_ns
    remaining = probe.start_period_ns - elapsed_ns
    if remaining < probe.interval_ns:
        return remaining
    return probe.start_interval_ns if status == "starting" else probe.interval_ns


def apply_result(health: HealthState, probe: Probe, result: dict[str, Any],
                 start_ns: int, started_at_ns: int) -> bool:
    """Record one probe result; True when the status changed."""
    old = health.status
    health.log = [*health.log, result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health.failing_streak = 0
        health.status = "healthy"
    elif not (health.status == "starting"
              and start_ns - started_at_ns < probe.start_period_ns):
        # Failures inside the start period of a never-healthy container
        # are recorded but do not count.
        health.failing_streak += 1
        if health.failing_streak >= probe.retries:
            health.status = "unhealthy"
    return health.status != old


class LimitedOutput:
    """Keeps the first 4096 bytes; "..." marks that more was dropped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.truncated = False

    def write(self, data: bytes) -> None:
        keep = MAX_OUTPUT - len(self._buf)
        if keep > 0:
            self._buf += data[:keep]
        if len(data) > max(keep, 0):
            self.truncated = True

    def text(self) -> str:
        out = self._buf.decode("utf-8", errors="replace")
        return out + "..." if self.truncated else out


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(), which dockerd's timeout message uses."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = len(str(unit)) - 1
        f = f"{rest:0{digits}d}".rstrip("0")
        return f"{whole}.{f}" if f else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000)}µs"
    if ns < NS:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    h, rest = divmod(ns, 3600 * NS)
    m, rest = divmod(rest, 60 * NS)
    s = frac(rest, NS)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def probe_process(spec_process: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """The container's OCI process with the probe's args and no terminal."""
    proc = json.loads(json.dumps(spec_process))
    proc["args"] = argv
    proc["terminal"] = False
    proc.pop("consoleSize", None)
    return proc


class HealthMonitor:
    """One monitor task per running container that has a probe."""

    def __init__(self, store: ContainerStore, runner: ContainerRunner) -> None:
        self.store = store
        self.runner = runner
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def reset(self, c: Container) -> None:
        """A (re)start or a restore: status starting, streak 0, monitor on."""
        probe = probe_of(c.config)
        if probe is None:
            return
        self.stop(c)
        if c.state.health is None:
            c.state.health = HealthState()
        c.state.health.status = "starting"
        c.state.health.failing_streak = 0
        self._tasks[c.id] = asyncio.create_task(self._monitor(c, probe))

    def resume(self, c: Container) -> None:
        """After a daemon restart (dockerd's restore calls initHealthMonitor)."""
        if probe_of(c.config) is None or c.id in self._tasks:
            return
        self.reset(c)
        self.store.save(c)

    def stop(self, c: Container) -> None:
        """Stop the monitor (container exited, or about to be restarted).

        As dockerd, a stopped monitor leaves the status unhealthy."""
        task = self._tasks.pop(c.id, None)
        if task is None:
            return
        task.cancel()
        if c.state.health is not None:
            c.state.health.status = "unhealthy"

    def stop_all(self) -> None:
        """Daemon shutdown: only our tasks stop; nothing is persisted as
        unhealthy, the monitors come back after the restart."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _monitor(self, c: Container, probe: Probe) -> None:
        health = c.state.health
        assert health is not None
        me = asyncio.current_task()
        try:
            while True:
                elapsed = time.time_ns() - c.state.started_at
                await asyncio.sleep(next_wait_ns(probe, elapsed, health.status) / NS)
                if c.state.status == "paused":
                    # dockerd stops probing while paused; try again later.
                    continue
                if c.state.status != "running" or c not in self.store:
                    return
                start_ns = time.time_ns()
                result = await self._run_probe(c, probe)
                if self._tasks.get(c.id) is not me:
                    return   # stopped while probing: the result is void
                result["Start"] = rfc3339(start_ns)
                if apply_result(health, probe, result, start_ns, c.state.started_at):
                    # Only status changes go to disk: dockerd too keeps
                    # the probe log in memory between checkpoints.
                    self.store.save(c)
                    self.store.emit(c, f"health_status: {health.status}")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health monitor of %s failed", c.id[:12])
        finally:
            if self._tasks.get(c.id) is me:
                self._tasks.pop(c.id, None)

    async def _run_probe(self, c: Container, probe: Probe) -> dict[str, Any]:
        """One probe as an exec: {End, ExitCode, Output} (Start added by the caller)."""
        exec_id = secrets.token_hex(32)
        session_dir = str(self.store.bundle(c) / "health" / exec_id[:16])
        attrs = {"execID": exec_id}
        # dockerd's action text: entrypoint, a space, the joined args.
        action_cmd = f"{probe.argv[0]} {' '.join(probe.argv[1:])}"
        self.store.emit(c, f"exec_create: {action_cmd}", **attrs)
        try:
            spec = await asyncio.to_thread(_read_spec_process, str(self.store.bundle(c) / "config.json"))
            process = probe_process(spec, probe.argv)
            try:
                sess = await exec_process(self.runner.runtime_for(c), self.runner.conmon, c.id,
                                          exec_id[:32],
                                          session_dir, process, attach=True,
                                          timeout=EXEC_START_TIMEOUT_S)
            except ExecStartError as e:
                msg = e.runtime_message.strip() or str(e)
                return _result(-1, f"OCI runtime exec failed: {msg}: unknown")
            except (TimeoutError, OSError) as e:
                return _result(-1, f"timed out starting health check for container {c.id}"
                               if isinstance(e, TimeoutError) else str(e))
            self.store.emit(c, f"exec_start: {action_cmd}", **attrs)
            output = LimitedOutput()
            try:
                code = await asyncio.wait_for(_collect(sess, output), probe.timeout_ns / NS)
            except TimeoutError:
                await _kill_probe(sess)
                self.store.emit(c, "exec_die", exitCode="-1", **attrs)
                out = output.text()
                msg = f"Health check exceeded timeout ({go_duration(probe.timeout_ns)})"
                return _result(-1, f"{msg}: {out}" if out else msg)
            finally:
                sess.close()
            self.store.emit(c, "exec_die", exitCode=str(code), **attrs)
            return _result(code, output.text())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken probe is a failed check, not a dead monitor
            log.warning("health check of %s failed to run: %s", c.id[:12], e)
            return _result(-1, str(e))
        finally:
            await remove_session_dir(session_dir)


def _result(code: int, output: str) -> dict[str, Any]:
    return {"Start": "", "End": rfc3339(time.time_ns()), "ExitCode": code, "Output": output}


def _read_spec_process(path: str) -> dict[str, Any]:
    with open(path) as f:
        proc: dict[str, Any] = json.load(f)["process"]
    return proc


async def _collect(sess: Any, output: LimitedOutput) -> int:
    assert sess.attach is not None
    async for _stream, data in sess.attach:
        output.write(data)
    code: int = await sess.wait()
    return code


async def _kill_probe(sess: Any) -> None:
    """SIGKILL the probe; if its children keep conmon alive, conmon goes too."""
    if process_alive(sess.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(sess.pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(wait_pid_exit(sess.conmon_pid), 5)
    except TimeoutError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(kill_conmon(sess.conmon_pid), 5)
