"""The daemon's listeners as dockerd's: several -H at once, daemon.json
`hosts` and TLS keys, plain TCP refused without `--tls=false`, bad TLS files
and a taken port stopping the start before anything is left behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tls_util import free_port, start_tls_daemon

from tests.integration.conftest import DOCKER, start_daemon, stop_daemon


def start_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    sock = tmp_path / "s.sock"
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
                          "--data-root", str(tmp_path / "data"),
                          "--exec-root", str(tmp_path / "exec"), *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert not sock.exists()
    assert "Traceback" not in res.stderr
    return res


def nobody_listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_plain_tcp_without_acknowledgment_is_refused(tmp_path: Path):
    port = free_port()
    res = start_fails(tmp_path, "-H", f"tcp://127.0.0.1:{port}")
    assert "Binding to IP address without --tlsverify is insecure and gives root access on " \
           "this machine to everyone who has access to your network." in res.stderr
    assert "You can override this by explicitly specifying '--tls=false' or " \
           "'--tlsverify=false'" in res.stderr
    assert f"refusing to listen on tcp://127.0.0.1:{port} without TLS" in res.stderr
    assert nobody_listens(port)
    # the engine did not even start: no data root
    assert not (tmp_path / "data").exists()


def test_bad_tls_files_stop_the_start(tmp_path: Path, pki: Path):
    port = free_port()
    res = start_fails(tmp_path, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                      "--tlscacert", str(pki / "ca.pem"), "--tlscert", str(pki / "cert.pem"),
                      "--tlskey", str(pki / "server-key.pem"))
    assert "invalid TLS configuration: could not load X509 key pair" in res.stderr
    res = start_fails(tmp_path, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                      "--tlscacert", str(tmp_path / "none.pem"),
                      "--tlscert", str(pki / "server-cert.pem"),
                      "--tlskey", str(pki / "server-key.pem"))
    assert "could not read CA certificate" in res.stderr
    assert nobody_listens(port)


def test_a_taken_port_stops_the_start(tmp_path: Path, pki: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = start_fails(tmp_path, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                          "--tlscacert", str(pki / "ca.pem"),
                          "--tlscert", str(pki / "server-cert.pem"),
                          "--tlskey", str(pki / "server-key.pem"))
    assert f"cannot listen on tcp://127.0.0.1:{port}: Address already in use" in res.stderr
    # the port is checked before the engine starts: it made nothing
    assert not (tmp_path / "data").exists() and not (tmp_path / "exec").exists()


def test_plain_tcp_with_tls_false_and_unix_at_once():
    base = Path(tempfile.mkdtemp(prefix="dockyard-plain-", dir="/var/tmp"))
    port = free_port()
    d = start_daemon(base, ["-H", f"tcp://127.0.0.1:{port}", "--tls=false"])
    try:
        log = d.log()
        assert "Binding to IP address without --tlsverify is insecure" in log
        assert f"tcp://127.0.0.1:{port} (plain HTTP, no TLS" in log
        env = {**d.env(), "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        over_tcp = subprocess.run([DOCKER, "run", "--rm", "busybox", "echo", "tcp"], env=env,
                                  capture_output=True, timeout=60)
        assert over_tcp.stdout == b"tcp\n", over_tcp.stderr
        assert d.out("run", "--rm", "busybox", "echo", "unix") == "unix\n"
    finally:
        stop_daemon(d)


def test_daemon_json_hosts_and_tls_keys(pki: Path, tmp_path: Path):
    """The daemon.json keys hosts, tlsverify, tlscacert, tlscert, tlskey."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-json-", dir="/var/tmp"))
    port = free_port()
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({
        "hosts": [f"tcp://127.0.0.1:{port}"], "tlsverify": True,
        "tlscacert": str(pki / "ca.pem"), "tlscert": str(pki / "server-cert.pem"),
        "tlskey": str(pki / "server-key.pem")}))
    # start_daemon passes -H unix://...: with hosts in the file, that is a conflict
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "daemon",
                          "--config-file", str(cfg), "-H", "unix:///run/never.sock",
                          "--data-root", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "specified both as a flag and in the configuration file: hosts" in res.stderr
    cfg.write_text(json.dumps({
        "tlsverify": True, "tlscacert": str(pki / "ca.pem"),
        "tlscert": str(pki / "server-cert.pem"), "tlskey": str(pki / "server-key.pem")}))
    d = start_daemon(base, ["-H", f"tcp://127.0.0.1:{port}", "--config-file", str(cfg)])
    try:
        env = {**d.env(), "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "DOCKER_TLS_VERIFY": "1",
               "DOCKER_CERT_PATH": str(pki)}
        res = subprocess.run([DOCKER, "run", "--rm", "busybox", "echo", "ok"], env=env,
                             capture_output=True, timeout=60)
        assert res.stdout == b"ok\n", res.stderr
    finally:
        stop_daemon(d)


def test_encryption_only_mode(pki: Path, cacert_only: Path):
    """--tlsverify=false: TLS, and any client may connect."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-enc-", dir="/var/tmp"))
    td = start_tls_daemon(base, pki, ["--tlsverify=false"])
    try:
        assert "TLS without client verification (encryption only)" in td.daemon.log()
        assert "Binding to IP address without --tlsverify is insecure" in td.daemon.log()
        res = td.docker("version", "--format", "{{.Server.Version}}",
                        env=td.env(cert_path=cacert_only))
        assert res.returncode == 0, res.stderr
    finally:
        stop_daemon(td.daemon)


def test_doctor_reports_profile_listeners_and_socket(tls_daemon):  # type: ignore[no-untyped-def]
    d, pki = tls_daemon.daemon, tls_daemon.certs
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "doctor", "--json",
                          "-H", d.host, "-H", tls_daemon.url, "--tlsverify",
                          "--tlscacert", str(pki / "ca.pem"),
                          "--tlscert", str(pki / "server-cert.pem"),
                          "--tlskey", str(pki / "server-key.pem")],
                         capture_output=True, text=True, timeout=120)
    report = json.loads(res.stdout)
    sc = report["seccomp_profile"]
    assert sc["profile"] == "builtin" and sc["ok"] and "sha256 verified" in sc["origin"]
    ls = report["listeners"]
    assert ls["error"] == "" and ls["tls"]["mode"] == "TLS, client certificates verified"
    assert ls["tls"]["cert_expires"]
    unix, tcp = ls["hosts"]
    assert (unix["url"], unix["owner"], unix["group"], unix["mode"]) == \
        (d.host, "root", "docker", "0660")
    assert unix["is_socket"] and unix["daemon_answers"]
    assert tcp == {"url": tls_daemon.url, "mode": "TLS, client certificates verified"}
    text = subprocess.run([sys.executable, "-m", "dockyard.cli", "doctor", "-H", d.host,
                           "-H", "tcp://127.0.0.1:2375"], capture_output=True, text=True,
                          timeout=120).stdout
    assert "[ok  ] seccomp profile: builtin: Docker's default profile" in text
    assert f"[ok  ] listener {d.host}: socket owner root:docker, mode 0660, a daemon answers" \
        in text
    assert "[FAIL] listener tcp://127.0.0.1:2375: plain HTTP: refused at start without " \
           "--tls=false" in text
