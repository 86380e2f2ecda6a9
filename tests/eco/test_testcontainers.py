"""testcontainers-python 4 against dockyard.  Ryuk (the reaper container)
needs an image from Docker Hub, which these machines cannot reach, so it is
off (TESTCONTAINERS_RYUK_DISABLED) and the tests clean up by label."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # read when testcontainers loads

from testcontainers.compose import DockerCompose
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import (
    HttpWaitStrategy,
    LogMessageWaitStrategy,
)

from tests.eco.util import APPS, http_get
from tests.integration.conftest import Daemon

SERVE = "mkdir -p /www && echo {text} > /www/index.html && echo serving && " \
        "exec httpd -f -p 80 -h /www"
SESSION_LABEL = "org.testcontainers.session-id"


@pytest.fixture
def engine(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    for k, v in daemon.env().items():
        if k.startswith("DOCKER_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")  # DockerCompose builds the demo's web
    yield daemon
    # no reaper: what the session made is found by its label and removed
    left = daemon.out("ps", "-aq", "--filter", f"label={SESSION_LABEL}").split()
    if left:
        daemon.out("rm", "-f", *left)
    assert daemon.out("ps", "-aq", "--filter", f"label={SESSION_LABEL}") == ""


def _web(text: str) -> DockerContainer:
    return DockerContainer("busybox").with_command(["sh", "-c", SERVE.format(text=text)])


def test_exposed_port_and_log_wait(engine: Daemon) -> None:
    c = _web("tc").with_exposed_ports(80).waiting_for(LogMessageWaitStrategy("serving"))
    with c:
        url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(80)}/"
        assert http_get(url) == "tc\n"
        assert c.exec(["sh", "-c", "exit 3"]).exit_code == 3
        res = c.exec(["cat", "/www/index.html"])
        assert (res.exit_code, res.output) == (0, b"tc\n")
        assert SESSION_LABEL in engine.out("inspect", "-f", "{{json .Config.Labels}}",
                                           c.get_wrapped_container().id)
    assert engine.out("ps", "-aq", "--filter", f"id={c.get_wrapped_container().id}") == ""


def test_http_wait_strategy(engine: Daemon) -> None:
    c = _web("ok").with_exposed_ports(80).waiting_for(
        HttpWaitStrategy(80).for_status_code(200))
    with c:
        url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(80)}/"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200


def test_network_with_aliases(engine: Daemon) -> None:
    with Network() as net:
        server = _web("A").with_network(net).with_network_aliases("alpha")
        client = DockerContainer("busybox").with_command(["sleep", "120"]).with_network(net)
        with server, client:
            retry = "for i in $(seq 10); do wget -qO- http://alpha/ && exit 0; sleep 0.5; done"
            res = client.exec(["sh", "-c", retry + "; exit 1"])
            assert (res.exit_code, res.output) == (0, b"A\n")
        name = net.name
    assert name not in engine.out("network", "ls", "--format", "{{.Name}}")


def test_docker_compose_fixture(engine: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "demo"
    shutil.copytree(APPS / "demo", app)
    with DockerCompose(str(app), wait=True) as compose:
        host = compose.get_service_host("web", 8080)
        port = compose.get_service_port("web", 8080)
        assert http_get(f"http://{host}:{port}/") == "web hi fromfile\n"
        out, _, code = compose.exec_in_container(["wget", "-qO-", "http://database/"], "web")
        assert (code, out) == (0, "dbpage\n")
    assert engine.out("ps", "-aq", "--filter", "label=com.docker.compose.project=demo") == ""
