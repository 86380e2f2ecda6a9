"""Issue 5 items 10-11: health checks and restart policies, through the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Daemon, start_daemon, stop_daemon


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(daemon.out("inspect", name))[0]
    return out


def unix_seconds(rfc3339: str) -> int:
    return int(datetime.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")
               .replace(tzinfo=UTC).timestamp())


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def health_status(daemon: Daemon, name: str) -> str | None:
    h = inspect(daemon, name)["State"].get("Health")
    return h["Status"] if h else None


# ------------------------------------------------------------------ health
def test_health_starting_unhealthy_healthy_with_events(daemon, name):
    since = str(int(time.time()))
    daemon.out("run", "-d", "--name", name, "--health-cmd", "test -f /tmp/ok",
               "--health-interval", "1s", "busybox", "sleep", "300")
    try:
        assert health_status(daemon, name) == "starting"
        assert "(health: starting)" in daemon.out("ps", "--filter", f"name={name}")
        wait_for(lambda: health_status(daemon, name) == "unhealthy", 12, "unhealthy")
        st = inspect(daemon, name)["State"]["Health"]
        assert st["FailingStreak"] >= 3
        assert st["Log"][-1]["ExitCode"] == 1
        assert set(st["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
        assert name in daemon.out("ps", "--filter", "health=unhealthy", "--format",
                                  "{{.Names}}")
        daemon.out("exec", name, "touch", "/tmp/ok")
        wait_for(lambda: health_status(daemon, name) == "healthy", 15, "healthy")
        h = inspect(daemon, name)["State"]["Health"]
        assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
        assert len(h["Log"]) <= 5
        assert "(healthy)" in daemon.out("ps", "--filter", f"name={name}")
        assert name in daemon.out("ps", "--filter", "health=healthy", "--format",
                                  "{{.Names}}")
        ev = daemon.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                        "--filter", f"container={name}", "--filter", "event=health_status",
                        "--format", "{{.Action}}")
        assert ev.split("\n")[:2] == ["health_status: unhealthy", "health_status: healthy"]
    finally:
        daemon.docker("rm", "-f", name)


def test_health_output_and_timeout(daemon, name):
    daemon.out("run", "-d", "--name", name, "--health-cmd", "echo hi; sleep 5",
               "--health-interval", "1s", "--health-timeout", "500ms",
               "--health-retries", "1", "busybox", "sleep", "300")
    try:
        wait_for(lambda: health_status(daemon, name) == "unhealthy", 15, "unhealthy")
        last = inspect(daemon, name)["State"]["Health"]["Log"][-1]
        assert last["ExitCode"] == -1
        assert last["Output"] == "Health check exceeded timeout (500ms): hi\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_health_output_truncated_and_cmd_form(daemon, client, name):
    c = client.containers.run(
        "busybox", ["sleep", "300"], detach=True, name=name,
        healthcheck={"Test": ["CMD", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"],
                     "Interval": 500_000_000, "Retries": 1})
    try:
        wait_for(lambda: health_status(daemon, name) == "healthy", 10, "healthy")
        out = inspect(daemon, name)["State"]["Health"]["Log"][-1]["Output"]
        assert out == "x" * 4096 + "..."
    finally:
        c.remove(force=True)


def test_no_healthcheck_has_no_health(daemon, name):
    daemon.out("run", "-d", "--name", name, "--no-healthcheck", "busybox", "sleep", "300")
    try:
        state = inspect(daemon, name)["State"]
        assert "Health" not in state
        assert name in daemon.out("ps", "--filter", "health=none", "--format", "{{.Names}}")
    finally:
        daemon.docker("rm", "-f", name)


def test_health_stops_with_the_container(daemon, name):
    daemon.out("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval",
               "500ms", "busybox", "sleep", "300")
    try:
        wait_for(lambda: health_status(daemon, name) == "healthy", 10, "healthy")
        daemon.out("stop", "-t", "1", name)
        n = len(inspect(daemon, name)["State"]["Health"]["Log"])
        time.sleep(1.5)
        h = inspect(daemon, name)["State"]["Health"]
        assert len(h["Log"]) == n
        # dockerd: a stopped monitor leaves the status unhealthy
        assert h["Status"] == "unhealthy"
        daemon.out("start", name)
        assert health_status(daemon, name) == "starting"
        wait_for(lambda: health_status(daemon, name) == "healthy", 10, "healthy again")
    finally:
        daemon.docker("rm", "-f", name)


# ------------------------------------------------------------------ restart
def test_on_failure_max_retries(daemon, name):
    daemon.out("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox",
               "sh", "-c", "exit 1")
    try:
        def done() -> bool:
            st = inspect(daemon, name)
            return st["State"]["Status"] == "exited" and st["RestartCount"] == 2
        wait_for(done, 15, "two restarts then exited")
        time.sleep(1)
        info = inspect(daemon, name)
        assert info["RestartCount"] == 2
        assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 1
    finally:
        daemon.docker("rm", "-f", name)


def test_on_failure_not_after_success(daemon, name):
    daemon.out("run", "-d", "--name", name, "--restart", "on-failure", "busybox", "true")
    try:
        daemon.out("wait", name)
        time.sleep(0.8)
        info = inspect(daemon, name)
        assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited"
    finally:
        daemon.docker("rm", "-f", name)


def test_always_restarts_and_stop_is_final(daemon, name):
    daemon.out("run", "-d", "--name", name, "--restart", "always", "busybox",
               "sh", "-c", "sleep 0.5; exit 3")
    try:
        wait_for(lambda: inspect(daemon, name)["RestartCount"] >= 2, 15, "restarts")
        daemon.out("stop", "-t", "1", name)
        time.sleep(1.5)
        info = inspect(daemon, name)
        assert info["State"]["Status"] == "exited"
        count = info["RestartCount"]
        # a user start resets the count, as dockerd does
        daemon.out("start", name)
        assert inspect(daemon, name)["RestartCount"] <= 1 or count == 0
    finally:
        daemon.docker("rm", "-f", name)


def test_kill_prevents_restart(daemon, name):
    daemon.out("run", "-d", "--name", name, "--restart", "always", "busybox", "sleep", "300")
    try:
        daemon.out("kill", name)
        time.sleep(1)
        info = inspect(daemon, name)
        assert info["State"]["Status"] == "exited" and info["RestartCount"] == 0
    finally:
        daemon.docker("rm", "-f", name)


def test_restarting_status_while_waiting(daemon, name):
    # After a few quick failures the delay is long enough to be observed.
    daemon.out("run", "-d", "--name", name, "--restart", "always", "busybox", "false")
    try:
        def restarting() -> bool:
            return "Restarting (1)" in daemon.out("ps", "-a", "--filter", f"name={name}")
        wait_for(restarting, 15, "Restarting in ps")
        daemon.out("stop", name)
        assert inspect(daemon, name)["State"]["Status"] == "exited"
    finally:
        daemon.docker("rm", "-f", name)


# ------------------------------------------------------------------ daemon restart
@pytest.fixture
def own_daemon() -> Iterator[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-hr-", dir="/var/tmp"))
    holder: dict[str, Any] = {"d": start_daemon(base), "base": base}
    exec_root = holder["d"].exec_root
    try:
        yield holder
    finally:
        d = holder["d"]
        if d.proc.poll() is not None:
            d = holder["d"] = restart(holder)
        stop_daemon(d)
        subprocess.run(["umount", "-l", str(exec_root / "netns")], check=False,
                       capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def restart(holder: dict[str, Any]) -> Daemon:
    """Start the daemon again on the same data root and exec root."""
    old: Daemon = holder["d"]
    new = start_daemon(holder["base"], ["--exec-root", str(old.exec_root)])
    return replace(new, exec_root=old.exec_root)


def test_policies_at_daemon_start(own_daemon):
    d: Daemon = own_daemon["d"]
    d.out("run", "-d", "--name", "ra", "--restart", "always", "busybox", "sleep", "300")
    d.out("run", "-d", "--name", "ru", "--restart", "unless-stopped", "busybox", "sleep", "300")
    d.out("run", "-d", "--name", "rn", "busybox", "sleep", "300")
    d.out("stop", "-t", "1", "ra", "ru", "rn")
    stop_daemon(d, cleanup=False)
    d = own_daemon["d"] = restart(own_daemon)
    wait_for(lambda: inspect(d, "ra")["State"]["Status"] == "running", 15, "always restarted")
    assert inspect(d, "ru")["State"]["Status"] == "exited"
    assert inspect(d, "rn")["State"]["Status"] == "exited"


def test_always_container_that_died_while_daemon_was_down(own_daemon):
    d: Daemon = own_daemon["d"]
    d.out("run", "-d", "--name", "ra", "--restart", "always", "--health-cmd", "true",
          "--health-interval", "500ms", "busybox", "sh", "-c", "sleep 3; exit 5")
    d.out("run", "-d", "--name", "rh", "--health-cmd", "true", "--health-interval", "500ms",
          "busybox", "sleep", "300")
    wait_for(lambda: health_status(d, "rh") == "healthy", 10, "healthy")
    stop_daemon(d, cleanup=False)
    time.sleep(4)
    back_at = int(time.time()) + 1
    d = own_daemon["d"] = restart(own_daemon)
    wait_for(lambda: inspect(d, "ra")["State"]["Status"] == "running", 15, "always restarted")
    # health checks resume for the container that kept running
    wait_for(lambda: unix_seconds(inspect(d, "rh")["State"]["Health"]["Log"][-1]["End"])
             >= back_at, 10, "a probe after the daemon restart")
    assert health_status(d, "rh") == "healthy"


def test_restart_right_after_the_container_exited_on_its_own(client, name):
    """`restart` of a container whose run has just ended by itself waits
    until that run is released: the new run never meets the old one's
    endpoint on the bridge (a 409 "endpoint ... already exists" before)."""
    api = client.api
    cid = api.create_container("busybox", "true", name=name)["Id"]
    try:
        api.start(cid)
        for _ in range(60):
            api.restart(cid, timeout=0)      # raises on any error
        assert api.wait(cid, timeout=30)["StatusCode"] == 0
        assert api.inspect_container(cid)["RestartCount"] == 0
    finally:
        api.remove_container(cid, force=True)
