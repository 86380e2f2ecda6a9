"""A container's record: what is persisted, and Docker's shapes built from it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dockyard.util.atomic import atomic_write
from dockyard.util.timefmt import rfc3339


def _fields_of(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass
class HealthState:
    status: str = "starting"
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": self.log}


@dataclass
class State:
    status: str = "created"          # created running paused restarting removing exited dead
    pid: int = 0
    conmon_pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: int = 0              # ns
    finished_at: int = 0             # ns
    oom_killed: bool = False
    restart_count: int = 0
    manually_stopped: bool = False   # `docker stop`: no restart policy after it
    removal: bool = False
    health: HealthState | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    def to_json(self) -> dict[str, Any]:
        d = {
            "Status": self.status,
            "Running": self.status in ("running", "paused"),
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid if self.status in ("running", "paused") else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339(self.started_at),
            "FinishedAt": rfc3339(self.finished_at),
        }
        if self.health is not None:
            d["Health"] = self.health.to_json()
        return d


@dataclass
class Container:
    id: str
    name: str
    created: int                                   # ns
    image_ref: str                                 # as the user gave it
    image_id: str
    config: dict[str, Any]                         # Docker Config, merged with the image's
    host_config: dict[str, Any]                    # normalised HostConfig
    networking_config: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    args: list[str] = field(default_factory=list)
    runtime: str = "runc"
    platform: str = "linux"
    state: State = field(default_factory=State)
    exec_ids: list[str] = field(default_factory=list)
    has_been_started: bool = False
    warnings: list[str] = field(default_factory=list)
    # while running: network name -> endpoint (networks/records.py Endpoint)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # while running: the published ports (networks/ports.py PortMapping)
    ports: list[dict[str, Any]] = field(default_factory=list)
    # volumes, binds and --mount tmpfs (volumes/points.py MountPoint records)
    mounts: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ io
    def to_disk(self) -> dict[str, Any]:
        """The record as JSON-ready data, as `asdict` gives it but without
        copying the nested dicts and lists (only for serialising at once)."""
        d = _fields_of(self)
        d["state"] = st = _fields_of(self.state)
        if self.state.health is not None:
            st["health"] = _fields_of(self.state.health)
        return d

    @classmethod
    def from_disk(cls, d: dict[str, Any]) -> Container:
        st = d.pop("state", {}) or {}
        health = st.pop("health", None)
        state = State(**st)
        if health is not None:
            state.health = HealthState(**health)
        return cls(state=state, **d)

    def save(self, directory: Path) -> None:
        atomic_write(directory / "config.v2.json",
                     json.dumps(self.to_disk(), separators=(",", ":")).encode(), 0o600,
                     make_parents=False, sync_dir=False)

    @classmethod
    def load(cls, directory: Path) -> Container:
        return cls.from_disk(json.loads((directory / "config.v2.json").read_text()))

    # -------------------------------------------------------------- shapes
    @property
    def short_id(self) -> str:
        return self.id[:12]

    def command_string(self) -> str:
        """`docker ps` COMMAND: arguments with spaces in single quotes, as dockerd."""
        args = [f"'{a}'" if " " in a else a for a in self.args]
        return " ".join([self.path, *args]) if args else self.path

    def status_text(self, now: float | None = None) -> str:
        """`docker ps` STATUS column text."""
        now = now or time.time()
        st = self.state
        if st.status in ("running", "paused"):
            s = f"Up {human_duration(now - st.started_at / 1e9)}"
            if st.status == "paused":
                return s + " (Paused)"
            if st.health is not None:
                s += {"starting": " (health: starting)", "healthy": " (healthy)",
                      "unhealthy": " (unhealthy)"}.get(st.health.status, "")
            return s
        if st.status == "restarting":
            return f"Restarting ({st.exit_code}) {human_duration(now - st.finished_at / 1e9)} ago"
        if st.status == "removing":
            return "Removal In Progress"
        if st.status == "dead":
            return "Dead"
        if st.status == "created" or not st.finished_at:
            return "Created"
        return f"Exited ({st.exit_code}) {human_duration(now - st.finished_at / 1e9)} ago"


def human_duration(seconds: float) -> str:
    """Go's units.HumanDuration, which `docker ps` uses."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = int(seconds / 60)
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(seconds / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"
