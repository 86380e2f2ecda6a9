"""docker-compose v1 (1.29.2, Python) driving the same demo application."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.eco.util import COMPOSE_V1, events_during, http_get, run
from tests.integration.conftest import Daemon, host_network_objects, ours


def compose(d: Daemon, app: Path, *args: str, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    # --compatibility: deploy.resources limits become container limits
    return run([str(COMPOSE_V1), "--compatibility", *args], d, app, timeout=180, check=check)


def _port(d: Daemon, app: Path, index: int = 1) -> str:
    return compose(d, app, "port", "--index", str(index), "web", "8080").stdout.strip()


def _state(d: Daemon, name: str) -> str:
    return d.out("inspect", "-f", "{{.State.Status}}", name).strip()


@pytest.fixture
def up(daemon: Daemon, app: Path):  # type: ignore[no-untyped-def]
    before = host_network_objects()
    compose(daemon, app, "up", "-d")
    yield app
    compose(daemon, app, "down", "-v", "--remove-orphans", "-t", "1")
    assert daemon.out("ps", "-aq", "--filter", "label=com.docker.compose.project=demo") == ""
    assert "demo_dbdata" not in daemon.out("volume", "ls", "--format", "{{.Name}}").split()
    assert {o for o in host_network_objects() - before if ours(o)} == set()


def test_up_serves_resolves_and_limits(daemon: Daemon, up: Path) -> None:
    # v1 has no --wait: web started once db was healthy (depends_on condition)
    assert _state(daemon, "demo_db_1") == "running"
    health = daemon.out("inspect", "-f", "{{.State.Health.Status}}", "demo_db_1").strip()
    assert health == "healthy"
    assert http_get(f"http://{_port(daemon, up)}/") == "web hi fromfile\n"
    out = compose(daemon, up, "exec", "-T", "web", "wget", "-qO-", "http://database/").stdout
    assert out == "dbpage\n"
    built = compose(daemon, up, "exec", "-T", "web", "cat", "/built.txt", "/banner.txt").stdout
    assert built == "built by compose\ndemo banner\n"
    # v1 mounts the config file and the secret; it ignores `configs` (swarm only)
    files = compose(daemon, up, "exec", "-T", "web", "cat", "/etc/site.conf",
                    "/run/secrets/greeting").stdout
    assert files == "listen 8080\ns3cret\n"
    web = json.loads(daemon.out("inspect", "demo_web_1"))[0]
    assert web["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert web["HostConfig"]["NanoCpus"] == 500_000_000
    ps = compose(daemon, up, "ps").stdout
    assert "Up (healthy)" in ps and "127.0.0.1:" in ps


def test_everyday_commands(daemon: Daemon, up: Path) -> None:
    assert "db ready" in compose(daemon, up, "logs", "--no-color", "db").stdout
    assert compose(daemon, up, "exec", "-T", "web", "sh", "-c", "exit 5",
                   check=False).returncode == 5
    ran = compose(daemon, up, "run", "--rm", "--no-deps", "-T", "web", "sh", "-c",
                  "echo $FROM_FILE; exit 4", check=False)
    assert (ran.returncode, ran.stdout.strip()) == (4, "fromfile")
    assert "httpd -f -p 8080" in compose(daemon, up, "top", "web").stdout
    compose(daemon, up, "pause", "web")
    assert _state(daemon, "demo_web_1") == "paused"
    compose(daemon, up, "unpause", "web")
    compose(daemon, up, "stop", "-t", "1", "web")
    assert _state(daemon, "demo_web_1") == "exited"
    compose(daemon, up, "start", "web")
    assert http_get(f"http://{_port(daemon, up)}/") == "web hi fromfile\n"
    started = daemon.out("inspect", "-f", "{{.State.StartedAt}}", "demo_db_1")
    compose(daemon, up, "restart", "-t", "1", "db")
    assert daemon.out("inspect", "-f", "{{.State.StartedAt}}", "demo_db_1") != started
    compose(daemon, up, "kill", "-s", "SIGKILL", "web")
    assert _state(daemon, "demo_web_1") == "exited"
    # v1 lists every service, profiles or not
    services = compose(daemon, up, "config", "--services").stdout.split()
    assert sorted(services) == ["db", "debug", "web"]
    images = compose(daemon, up, "images").stdout
    assert "busybox" in images and "demo-web" in images


def test_scale_events_and_recreate(daemon: Daemon, up: Path) -> None:
    def scale() -> None:
        compose(daemon, up, "up", "-d", "--scale", "web=3")
        pages = {http_get(f"http://{_port(daemon, up, i)}/") for i in (1, 2, 3)}
        assert pages == {"web hi fromfile\n"}
        compose(daemon, up, "up", "-d", "--scale", "web=1")

    seen = events_during([str(COMPOSE_V1), "events", "--json"], daemon, up, scale)
    started = {e["attributes"]["name"] for e in seen if e["action"] == "start"}
    assert {"demo_web_2", "demo_web_3"} <= started
    db_id = daemon.out("inspect", "-f", "{{.Id}}", "demo_db_1").strip()
    web_id = daemon.out("inspect", "-f", "{{.Id}}", "demo_web_1").strip()
    text = (up / "compose.yaml").read_text().replace("GREETING: hi", "GREETING: again")
    (up / "compose.yaml").write_text(text)
    compose(daemon, up, "up", "-d")
    assert daemon.out("inspect", "-f", "{{.Id}}", "demo_db_1").strip() == db_id
    assert daemon.out("inspect", "-f", "{{.Id}}", "demo_web_1").strip() != web_id
    assert http_get(f"http://{_port(daemon, up)}/") == "web again fromfile\n"


def test_named_volume_keeps_data_across_down_and_up(daemon: Daemon, up: Path) -> None:
    assert compose(daemon, up, "exec", "-T", "db", "cat", "/data/boots").stdout == "boot\n"
    compose(daemon, up, "down", "-t", "1")
    compose(daemon, up, "up", "-d")
    deadline = time.time() + 20
    while _state(daemon, "demo_db_1") != "running":
        assert time.time() < deadline
        time.sleep(0.2)
    boots = compose(daemon, up, "exec", "-T", "db", "cat", "/data/boots").stdout
    assert boots == "boot\nboot\n"
