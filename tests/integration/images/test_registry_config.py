"""The daemon's registry configuration: registry-mirrors (Docker Hub names
pulled from the mirror), insecure-registries (plain http and unverified
TLS for the hosts listed), CA certificates from certs.d (the daemon's own,
beside its daemon.json, and Docker's /etc/docker/certs.d) and
max-concurrent-downloads, against a daemon started with a daemon.json.

Registries that must not be insecure by default cannot be on loopback:
they run in a network namespace made by these tests (NetNamespace), on an
address of 198.18.0.0/15 reached through a veth pair.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, remove_test_dir, start_daemon, stop_daemon
from tests.integration.images.faultproxy import FaultProxy
from tests.integration.images.registries import (
    NetNamespace,
    Registry,
    busybox_layer,
    image_layer,
    make_ca,
    push_image,
    round_trip,
)

DOCKER_CERTS = Path("/etc/docker/certs.d")


@dataclass
class Setup:
    net: NetNamespace
    verified: Registry           # TLS, its CA in the daemon's own certs.d
    docker_verified: Registry    # TLS, its CA in /etc/docker/certs.d
    insecure_tls: Registry       # TLS, listed in insecure-registries, no CA anywhere
    insecure_http: Registry      # plain http, listed in insecure-registries
    mirror: FaultProxy           # in front of a plain registry on 127.0.0.1
    mirror_registry: Registry
    daemon: Daemon


def _repo() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def setup(reg_dir: Path) -> Iterator[Setup]:
    net = NetNamespace().start()
    made: list[Registry] = []
    docker_ca_dir: Path | None = None
    created_certs_root = not DOCKER_CERTS.exists()
    proxy = None
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    daemon = None
    try:
        _ca, crt, key = make_ca(reg_dir / "netca", ips=(net.addr,))

        def reg(name: str, port: int, tls: bool) -> Registry:
            r = Registry(reg_dir / name, port=port, net=net,
                         tls=(crt, key) if tls else None).start()
            made.append(r)
            return r

        verified = reg("verified", 5000, True)
        insecure_tls = reg("insecure-tls", 5001, True)
        insecure_http = reg("insecure-http", 5002, False)
        docker_verified = reg("docker-verified", 5003, True)
        mirror_registry = Registry(reg_dir / "mirror").start()
        made.append(mirror_registry)
        proxy = FaultProxy(mirror_registry).start()
        conf = base / "etc"
        (conf / "certs.d" / verified.host).mkdir(parents=True)
        (conf / "certs.d" / verified.host / "ca.crt").write_bytes(_ca.read_bytes())
        docker_ca_dir = DOCKER_CERTS / docker_verified.host
        docker_ca_dir.mkdir(parents=True)
        (docker_ca_dir / "ca.crt").write_bytes(_ca.read_bytes())
        (conf / "daemon.json").write_text(json.dumps({
            "registry-mirrors": [f"http://{proxy.host}"],
            "insecure-registries": [insecure_tls.host, insecure_http.host],
            "max-concurrent-downloads": 2}))
        daemon = start_daemon(base, ["--config-file", str(conf / "daemon.json")])
        yield Setup(net, verified, docker_verified, insecure_tls, insecure_http, proxy,
                    mirror_registry, daemon)
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        else:
            remove_test_dir(base)
        if proxy is not None:
            proxy.stop()
        for r in made:
            r.stop()
        if docker_ca_dir is not None:
            remove_test_dir(docker_ca_dir)
            if created_certs_root:
                remove_test_dir(DOCKER_CERTS)
        net.stop()


def test_info_shows_the_registry_configuration(setup):
    cfg = json.loads(setup.daemon.out("info", "--format", "{{json .RegistryConfig}}"))
    assert cfg["Mirrors"] == [f"http://{setup.mirror.host}/"]
    assert "127.0.0.0/8" in cfg["InsecureRegistryCIDRs"]
    for r in (setup.insecure_tls, setup.insecure_http):
        assert cfg["IndexConfigs"][r.host]["Secure"] is False
    assert cfg["IndexConfigs"]["docker.io"]["Mirrors"] == [f"http://{setup.mirror.host}/"]


def test_mirror_serves_docker_hub_names(setup):
    """`docker pull alpine` asks the mirror for library/alpine."""
    push_image(setup.mirror_registry, "library/alpine", "latest", [busybox_layer()],
               cmd=["/bin/busybox", "echo", "from the mirror"])
    d = setup.daemon
    setup.mirror.reset()
    out = d.out("pull", "alpine")
    assert "latest: Pulling from library/alpine" in out
    assert "Status: Downloaded newer image for alpine:latest" in out
    assert any(s.path == "/v2/library/alpine/manifests/latest" for s in setup.mirror.seen)
    assert d.out("run", "--rm", "alpine").strip() == "from the mirror"
    digests = json.loads(d.out("image", "inspect", "--format", "{{json .RepoDigests}}",
                               "alpine"))
    assert digests and digests[0].startswith("alpine@sha256:")
    d.out("rmi", "alpine")


def test_tls_verified_with_the_daemons_certs_d(setup, daemon):
    round_trip(setup.daemon, setup.verified.host, _repo())
    # the default test daemon has no CA for that host: refused
    res = daemon.docker("pull", f"{setup.verified.host}/t/none:1")
    assert res.returncode == 1
    assert "x509: certificate signed by unknown authority" in res.stderr.decode()


def test_tls_verified_with_docker_certs_d(setup, daemon):
    """/etc/docker/certs.d serves every daemon, as it does dockerd."""
    round_trip(setup.daemon, setup.docker_verified.host, _repo())
    round_trip(daemon, setup.docker_verified.host, _repo())


def test_insecure_registries(setup, daemon):
    round_trip(setup.daemon, setup.insecure_tls.host, _repo())
    round_trip(setup.daemon, setup.insecure_http.host, _repo())
    # not listed for the default test daemon: verified TLS only
    res = daemon.docker("pull", f"{setup.insecure_tls.host}/t/none:1")
    assert "x509: certificate signed by unknown authority" in res.stderr.decode()
    res = daemon.docker("pull", f"{setup.insecure_http.host}/t/none:1")
    assert res.returncode == 1
    assert (f'Get "https://{setup.insecure_http.host}/v2/": http: server gave HTTP response '
            "to HTTPS client") in res.stderr.decode()


def test_max_concurrent_downloads(setup):
    repo = _repo()
    push_image(setup.mirror_registry, repo, "1",
               [image_layer({f"l{i}": random.Random(i).randbytes(30_000)}) for i in range(5)])
    setup.mirror.reset()
    setup.mirror.faults.blob_delay = 0.5
    d = setup.daemon
    d.out("pull", f"{setup.mirror.host}/{repo}:1")
    assert setup.mirror.max_inflight == 2
    d.out("rmi", f"{setup.mirror.host}/{repo}:1")


@pytest.mark.parametrize(("conf", "text"), [
    ({"registry-mirrors": ["ftp://mirror.example"]},
     'invalid mirror: unsupported scheme "ftp" in "ftp://mirror.example"'),
    ({"registry-mirrors": ["https://mirror.example/v2/"]},
     'invalid mirror: path, query, or fragment at end of the URI "https://mirror.example/v2/"'),
    ({"insecure-registries": ["http://r.example"]},
     "insecure registry http://r.example should not contain '://'"),
    ({"max-concurrent-downloads": 0}, "invalid max-concurrent-downloads value: 0"),
    ({"registry-mirrors": "https://m.example"}, "registry-mirrors must be a list of strings"),
])
def test_bad_registry_options_stop_the_start(tmp_path, conf, text):
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps(conf))
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "daemon", "--config-file",
                          str(cfg), "--data-root", str(tmp_path / "d"), "-H",
                          f"unix://{tmp_path}/s.sock"], capture_output=True, timeout=30)
    assert res.returncode == 1
    assert text in res.stderr.decode()
    assert not (tmp_path / "d").exists()
