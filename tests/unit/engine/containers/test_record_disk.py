"""A container record's file: to_disk gives what dataclasses.asdict gives
(without its deep copies), and load reads back an equal record."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from dockyard.engine.containers.record import Container, HealthState


def record(health: bool) -> Container:
    c = Container(
        id="ab" * 32, name="web", created=1_700_000_000_123_456_789, image_ref="busybox",
        image_id="sha256:" + "cd" * 32,
        config={"Env": ["A=1"], "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}},
                "Healthcheck": {"Test": ["CMD", "true"]}},
        host_config={"Binds": ["/a:/b"], "LogConfig": {"Type": "json-file", "Config": {}},
                     "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]},
        networking_config={"EndpointsConfig": {"app": {"Aliases": ["w"]}}},
        path="sh", args=["-c", "sleep 1"], exec_ids=["e1"],
        endpoints={"app": {"ip": "10.0.0.2", "prefixlen": 24}},
        ports=[{"host_ip": "127.0.0.1", "host_port": 8080}], mounts=[{"Type": "volume"}])
    c.state.status, c.state.pid, c.state.restart_count = "running", 42, 3
    if health:
        c.state.health = HealthState("healthy", 0, [{"Start": "t", "ExitCode": 0}])
    return c


@pytest.mark.parametrize("health", [False, True])
def test_to_disk_is_asdict(health: bool) -> None:
    c = record(health)
    assert c.to_disk() == asdict(c)
    assert json.dumps(c.to_disk()) == json.dumps(asdict(c))


@pytest.mark.parametrize("health", [False, True])
def test_saved_record_loads_equal(tmp_path: Path, health: bool) -> None:
    c = record(health)
    c.save(tmp_path)
    assert Container.load(tmp_path) == c
