"""Restart policies: no, always, unless-stopped, on-failure[:N] (dockerd's rules).

`RestartManager` keeps the per-container back-off and the pending restart
timers; the decisions are the pure functions below.

The decision follows moby's restart manager:
- The delay starts at 100 ms and doubles with every restart, capped at one
  minute; it goes back to 100 ms once a run lasted at least 10 s.
- `always` restarts on any exit, `unless-stopped` unless the user stopped
  or killed the container, `on-failure` on a non-zero exit while
  RestartCount is below MaximumRetryCount (0 means no limit).
- An explicit stop or kill cancels the restart manager: no restart after
  that exit, whatever the policy.  A `docker start`/`restart` makes a fresh
  one (RestartCount back to 0, delay back to 100 ms).
- At daemon start a fresh manager decides for every stopped container that
  was started before; that is why `always` comes back even after
  `docker stop`, and `unless-stopped` does not.

Per-container backoff lives in memory, as in dockerd: a daemon restart
starts every container's delay afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.restart")

INITIAL_DELAY_S = 0.1
MAX_DELAY_S = 60.0
BACKOFF_FACTOR = 2
# A run at least this long resets the delay.
RESET_AFTER_S = 10.0


@dataclass(frozen=True)
class Policy:
    name: str                   # "no", "always", "unless-stopped", "on-failure"
    max_retries: int = 0        # on-failure only; 0 = unlimited

    @classmethod
    def of(cls, host_config: dict[str, Any]) -> Policy:
        rp = host_config.get("RestartPolicy") or {}
        return cls(rp.get("Name") or "no", int(rp.get("MaximumRetryCount") or 0))

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")


def policy_wants_restart(policy: Policy, exit_code: int, manually_stopped: bool,
                         restart_count: int) -> bool:
    """Whether the policy alone asks for a restart (moby ShouldRestart's switch)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        # MaximumRetryCount 0 means no limit.
        return exit_code != 0 and (policy.max_retries == 0
                                   or restart_count < policy.max_retries)
    return False


def next_delay(previous: float, ran_for_s: float) -> float:
    """The wait before the next restart, given the previous one (0 = none yet)."""
    if ran_for_s >= RESET_AFTER_S:
        previous = 0.0
    if previous == 0:
        return INITIAL_DELAY_S
    return min(previous * BACKOFF_FACTOR, MAX_DELAY_S)


@dataclass
class _Backoff:
    delay: float = 0.0


# Starts a container whose lock the caller holds.
StartLocked = Callable[[Container], Awaitable[None]]


class RestartManager:
    def __init__(self, store: ContainerStore) -> None:
        self.store = store
        self._backoffs: dict[str, _Backoff] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}

    def decision(self, c: Container) -> float | None:
        """At an exit: the delay before restarting, or None."""
        policy = Policy.of(c.host_config)
        # An explicit stop or kill cancelled the manager (dockerd ExitOnNext).
        if (policy.is_none or c.host_config.get("AutoRemove") or c.state.removal
                or c.state.manually_stopped or c not in self.store
                or not policy_wants_restart(policy, c.state.exit_code,
                                            c.state.manually_stopped, c.state.restart_count)):
            # The next start is a user's, which starts a fresh manager anyway.
            self._backoffs.pop(c.id, None)
            return None
        ran_for = max(0, c.state.finished_at - c.state.started_at) / 1e9
        b = self._backoffs.setdefault(c.id, _Backoff())
        b.delay = next_delay(b.delay, ran_for)
        return b.delay

    def wanted_at_daemon_start(self, c: Container) -> bool:
        """A fresh manager's verdict for a stopped container at daemon start."""
        st = c.state
        if st.status in ("restarting", "removing", "dead") or st.removal:
            return False
        if not c.has_been_started or c.host_config.get("AutoRemove"):
            return False
        policy = Policy.of(c.host_config)
        return not policy.is_none and policy_wants_restart(
            policy, st.exit_code, st.manually_stopped, st.restart_count)

    def reset(self, c: Container) -> None:
        """A user start/restart: a fresh restart manager, as dockerd's
        containerStart(resetRestartManager=true)."""
        self._backoffs.pop(c.id, None)
        c.state.restart_count = 0
        c.state.manually_stopped = False

    def note_user_kill(self, c: Container) -> None:
        """`docker kill`: dockerd marks the container manually stopped, so
        unless-stopped will not bring it back, and cancels the restart
        manager for SIGKILL or the stop signal.  A kill with another signal
        would leave `always`/`on-failure` armed in dockerd; we cancel in
        every case (documented difference, rare in practice)."""
        c.state.manually_stopped = True
        self.store.save(c)

    def cancel(self, c: Container) -> None:
        t = self._timers.pop(c.id, None)
        if t is not None:
            t.cancel()

    def cancel_all(self) -> None:
        for t in list(self._timers.values()):
            t.cancel()

    def schedule(self, c: Container, delay: float, start_locked: StartLocked) -> None:
        c.state.status = "restarting"
        self.store.save(c)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._timers.pop(c.id, None)
            if c not in self.store or c.state.manually_stopped:
                return
            async with self.store.lock(c):
                # stop/kill may have come while we waited for the lock
                if c.state.manually_stopped or c.state.status != "restarting" or \
                        c not in self.store:
                    return
                c.state.restart_count += 1
                try:
                    await start_locked(c)
                except DockyardError as e:
                    log.warning("restarting %s failed: %s", c.id[:12], e.message)
                    c.state.status = "exited"
                    self.store.save(c)

        self._timers[c.id] = asyncio.create_task(later())
