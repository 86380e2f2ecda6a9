"""Helpers of the ecosystem lane."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import Daemon

ROOT = Path(__file__).resolve().parents[2]
ECO = ROOT / "build" / "eco"
PLUGIN = ECO / "docker-config" / "cli-plugins" / "docker-compose"
COMPOSE_V1 = ECO / "compose-v1" / "bin" / "docker-compose"
APPS = Path(__file__).resolve().parent / "apps"


def run(cmd: list[str], d: Daemon, cwd: Path, timeout: float = 120, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A client's command against the lane's daemon; fails the test with the
    client's own output when it fails and check is set."""
    res = subprocess.run(cmd, cwd=cwd, env={**d.env(), **(env or {})}, capture_output=True,
                         text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n"
                             f"{res.stderr}")
    return res


def http_get(url: str, timeout: float = 15) -> str:
    """The body at url, retried until it answers (a service just started)."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return r.read().decode()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def events_during(cmd: list[str], d: Daemon, cwd: Path, step: Callable[[], None]
                  ) -> list[dict[str, Any]]:
    """The JSON events a client's `events --json` printed while step ran."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=d.env(), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        step()
        time.sleep(1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
