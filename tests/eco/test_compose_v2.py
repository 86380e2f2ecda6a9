"""Docker Compose v2 (the `docker compose` CLI plugin) driving the demo
application through dockyard, asserting what its user sees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.eco.util import APPS, events_during, http_get, run
from tests.integration.conftest import DOCKER, Daemon, host_network_objects, ours

# BuildKit cannot be had here: compose builds with the classic builder
# (POST /build) when told so, as the docker CLI does
CLASSIC = {"DOCKER_BUILDKIT": "0"}


def compose(d: Daemon, app: Path, *args: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    return run([DOCKER, "compose", *args], d, app, timeout=timeout, check=check, env=CLASSIC)


def _port(d: Daemon, app: Path, service: str = "web", index: int = 1) -> str:
    return compose(d, app, "port", "--index", str(index), service, "8080").stdout.strip()


@pytest.fixture
def up(daemon: Daemon, app: Path):  # type: ignore[no-untyped-def]
    before = host_network_objects()
    compose(daemon, app, "up", "-d", "--wait", timeout=180)
    bridge = "link dy-" + daemon.out("network", "inspect", "-f", "{{.Id}}", "demo_back")[:12]
    assert bridge in host_network_objects()
    yield app
    compose(daemon, app, "--profile", "debug", "down", "-v", "--remove-orphans", "-t", "1")
    assert daemon.out("ps", "-aq", "--filter", "label=com.docker.compose.project=demo") == ""
    assert "demo_back" not in daemon.out("network", "ls", "--format", "{{.Name}}")
    assert daemon.out("volume", "ls", "-q", "--filter",
                      "label=com.docker.compose.project=demo") == ""
    # the project's bridge, veths and rules went with it
    after = host_network_objects()
    assert bridge not in after
    assert {o for o in after - before if ours(o)} == set()


def test_up_wait_serves_resolves_and_limits(daemon: Daemon, up: Path) -> None:
    assert http_get(f"http://{_port(daemon, up)}/") == "web hi fromfile\n"
    out = compose(daemon, up, "exec", "-T", "web", "wget", "-qO-", "http://database/").stdout
    assert out == "dbpage\n"
    # web's image was built from ./web with the build arg
    built = compose(daemon, up, "exec", "-T", "web", "cat", "/built.txt", "/banner.txt").stdout
    assert built == "built by compose\ndemo banner\n"
    # a bind-mounted config file (read-only), a secret and a config from files
    files = compose(daemon, up, "exec", "-T", "web", "cat", "/etc/site.conf",
                    "/run/secrets/greeting", "/etc/motd").stdout
    assert files == "listen 8080\ns3cret\nhello from motd\n"
    assert compose(daemon, up, "exec", "-T", "web", "touch", "/etc/site.conf",
                   check=False).returncode != 0
    ps = json.loads("[" + ",".join(compose(daemon, up, "ps", "--format", "json")
                                   .stdout.split("\n")[:-1]) + "]")
    health = {p["Service"]: p["Health"] for p in ps}
    assert health == {"db": "healthy", "web": ""}
    limit = compose(daemon, up, "exec", "-T", "web", "sh", "-c",
                    "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip()
    assert limit == str(64 * 1024 * 1024)
    web = json.loads(daemon.out("inspect", "demo-web-1"))[0]
    assert web["HostConfig"]["NanoCpus"] == 500_000_000
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # the debug profile's service is not started unless asked for
    assert "demo-debug-1" not in daemon.out("ps", "-a", "--format", "{{.Names}}")


def test_everyday_commands(daemon: Daemon, up: Path, tmp_path: Path) -> None:
    logs = compose(daemon, up, "logs", "--no-color", "--no-log-prefix", "db").stdout
    assert "db ready" in logs
    # logs -f ends when the line it waits for arrives
    follow = subprocess.Popen([DOCKER, "compose", "logs", "-f", "--no-color", "web"], cwd=up,
                              env=daemon.env(), stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        deadline = time.time() + 20
        while "web ready" not in follow.stdout.readline():
            assert time.time() < deadline
    finally:
        follow.kill()
        follow.wait()
    assert compose(daemon, up, "exec", "-T", "web", "sh", "-c", "exit 7",
                   check=False).returncode == 7
    ran = compose(daemon, up, "run", "--rm", "--no-deps", "web", "sh", "-c",
                  "echo $GREETING; exit 3", check=False)
    assert (ran.returncode, ran.stdout.strip()) == (3, "hi")
    assert "httpd -f -p 8080" in compose(daemon, up, "top", "web").stdout
    compose(daemon, up, "pause", "web")
    assert daemon.out("inspect", "-f", "{{.State.Status}}", "demo-web-1").strip() == "paused"
    compose(daemon, up, "unpause", "web")
    compose(daemon, up, "stop", "-t", "1", "web")
    assert daemon.out("inspect", "-f", "{{.State.Status}}", "demo-web-1").strip() == "exited"
    compose(daemon, up, "start", "web")
    assert http_get(f"http://{_port(daemon, up)}/") == "web hi fromfile\n"
    started = daemon.out("inspect", "-f", "{{.State.StartedAt}}", "demo-db-1")
    compose(daemon, up, "restart", "-t", "1", "db")
    assert daemon.out("inspect", "-f", "{{.State.StartedAt}}", "demo-db-1") != started
    # a kill is a stop by hand: unless-stopped does not bring it back
    compose(daemon, up, "kill", "-s", "SIGKILL", "web")
    time.sleep(1)
    state = daemon.out("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
                       "demo-web-1").strip()
    assert state == "0 exited 137"
    compose(daemon, up, "up", "-d", "--wait")
    # cp both ways with a large random payload, byte for byte
    payload = os.urandom(8 * 1024 * 1024)
    (tmp_path / "blob").write_bytes(payload)
    compose(daemon, up, "cp", str(tmp_path / "blob"), "web:/tmp/blob")
    inside = compose(daemon, up, "exec", "-T", "web", "sha256sum", "/tmp/blob").stdout.split()[0]
    assert inside == hashlib.sha256(payload).hexdigest()
    compose(daemon, up, "cp", "web:/tmp/blob", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == payload
    config = compose(daemon, up, "config", "--services").stdout.split()
    assert sorted(config) == ["db", "web"]
    images = compose(daemon, up, "images", "--format", "json").stdout
    assert {i["Repository"] for i in json.loads(images)} == {"busybox", "demo-web"}


def test_scale_with_events(daemon: Daemon, up: Path) -> None:
    def scale() -> None:
        compose(daemon, up, "up", "-d", "--wait", "--scale", "web=3")
        pages = {http_get(f"http://{_port(daemon, up, index=i)}/") for i in (1, 2, 3)}
        assert pages == {"web hi fromfile\n"}
        compose(daemon, up, "up", "-d", "--wait", "--scale", "web=1")

    seen = events_during([DOCKER, "compose", "events", "--json"], daemon, up, scale)
    starts = {e["attributes"]["name"] for e in seen if e["action"] == "start"}
    assert {"demo-web-2", "demo-web-3"} <= starts
    destroyed = {e["attributes"]["name"] for e in seen if e["action"] == "destroy"}
    assert {"demo-web-2", "demo-web-3"} <= destroyed
    names = daemon.out("ps", "--format", "{{.Names}}").split()
    assert sorted(n for n in names if n.startswith("demo-")) == ["demo-db-1", "demo-web-1"]


def test_a_change_recreates_only_what_changed(daemon: Daemon, up: Path) -> None:
    ids = {n: daemon.out("inspect", "-f", "{{.Id}}", f"demo-{n}-1").strip()
           for n in ("db", "web")}
    text = (up / "compose.yaml").read_text().replace("GREETING: hi", "GREETING: again")
    (up / "compose.yaml").write_text(text)
    compose(daemon, up, "up", "-d", "--wait")
    assert daemon.out("inspect", "-f", "{{.Id}}", "demo-db-1").strip() == ids["db"]
    assert daemon.out("inspect", "-f", "{{.Id}}", "demo-web-1").strip() != ids["web"]
    assert http_get(f"http://{_port(daemon, up)}/") == "web again fromfile\n"
    compose(daemon, up, "--profile", "debug", "up", "-d", "--wait")
    out = compose(daemon, up, "exec", "-T", "debug", "wget", "-qO-", "http://web:8080/").stdout
    assert out == "web again fromfile\n"


def test_named_volume_keeps_data_across_down_and_up(daemon: Daemon, up: Path) -> None:
    boots = compose(daemon, up, "exec", "-T", "db", "cat", "/data/boots").stdout
    assert boots == "boot\n"
    compose(daemon, up, "down", "-t", "1")
    assert "demo_dbdata" in daemon.out("volume", "ls", "--format", "{{.Name}}").split()
    compose(daemon, up, "up", "-d", "--wait")
    boots = compose(daemon, up, "exec", "-T", "db", "cat", "/data/boots").stdout
    assert boots == "boot\nboot\n"
    vol = json.loads(daemon.out("volume", "inspect", "demo_dbdata"))[0]
    assert vol["Labels"]["com.docker.compose.volume"] == "dbdata"


def test_a_postgres_shaped_application(daemon: Daemon, tmp_path: Path) -> None:
    """The issue's user: a database with a named volume and a health check,
    an app that waits for it on a published port; restart; down -v."""
    app = tmp_path / "pg"
    shutil.copytree(APPS / "pg", app)
    before = host_network_objects()
    compose(daemon, app, "up", "-d", "--wait", timeout=180)
    try:
        url = f"http://{compose(daemon, app, 'port', 'app', '80').stdout.strip()}/"
        assert http_get(url) == "row\n"
        compose(daemon, app, "restart", "-t", "1")
        compose(daemon, app, "up", "-d", "--wait")   # waits for health again
        # the app reread the table, which the restarted db grew in its volume
        deadline = time.time() + 20
        while http_get(url) != "row\nrow\n":
            assert time.time() < deadline
            time.sleep(0.3)
    finally:
        compose(daemon, app, "down", "-v", "-t", "1")
    assert daemon.out("ps", "-aq", "--filter", "label=com.docker.compose.project=pg") == ""
    assert "pg_default" not in daemon.out("network", "ls", "--format", "{{.Name}}").split()
    assert "pg_pgdata" not in daemon.out("volume", "ls", "--format", "{{.Name}}").split()
    assert {o for o in host_network_objects() - before if ours(o)} == set()
