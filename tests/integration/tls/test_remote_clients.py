"""The docker CLI and docker-py over TCP with mutual TLS
(DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=...): the same
results as over the unix socket, every byte intact; clients without a good
certificate refused, each with one line in the daemon's log."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tls_util import DOCKER, TlsDaemon

from dockyard.certs import issue, make_certs


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def name() -> str:
    return f"tls-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sleeper(tls_daemon: TlsDaemon, name: str):  # type: ignore[no-untyped-def]
    tls_daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    yield name
    tls_daemon.docker("rm", "-f", name)


def test_run_and_info_over_tls(tls_daemon: TlsDaemon):
    assert tls_daemon.out("run", "--rm", "busybox", "echo", "hello") == "hello\n"
    assert tls_daemon.out("info", "--format", "{{.ID}}") == \
        tls_daemon.daemon.out("info", "--format", "{{.ID}}")


def test_exec_with_piped_stdin(tls_daemon: TlsDaemon, sleeper: str):
    # the acceptance line: echo hello | docker --tlsverify -H ... exec -i c cat
    res = tls_daemon.docker("exec", "-i", sleeper, "cat", input=b"hello\n")
    assert res.returncode == 0 and res.stdout == b"hello\n", res.stderr
    # a large random payload in and out, through the close_notify half-close
    data = os.urandom(8 * 1024 * 1024)
    res = tls_daemon.docker("exec", "-i", sleeper, "sh", "-c", "cat > /tmp/in; sha256sum /tmp/in",
                            input=data)
    assert res.returncode == 0 and res.stdout.split()[0].decode() == sha256(data)
    res = tls_daemon.docker("exec", sleeper, "cat", "/tmp/in")
    assert sha256(res.stdout) == sha256(data)


def test_run_with_piped_stdin_and_exit_code(tls_daemon: TlsDaemon):
    data = os.urandom(2 * 1024 * 1024)
    res = tls_daemon.docker("run", "-i", "--rm", "busybox", "sh", "-c",
                            "sha256sum; exit 3", input=data)
    assert res.returncode == 3 and res.stdout.split()[0].decode() == sha256(data)


def test_logs_follow_over_tls(tls_daemon: TlsDaemon, name: str):
    tls_daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                   "for i in $(seq 1 200); do echo line $i; sleep 0.005; done")
    try:
        followed = tls_daemon.out("logs", "-f", name, timeout=60)
        assert followed == "".join(f"line {i}\n" for i in range(1, 201))
        assert tls_daemon.daemon.out("logs", name) == followed
    finally:
        tls_daemon.docker("rm", "-f", name)


def test_attach_over_tls(tls_daemon: TlsDaemon, name: str):
    tls_daemon.out("create", "-i", "--name", name, "busybox", "sh", "-c", "sha256sum")
    try:
        data = os.urandom(1024 * 1024)
        proc = subprocess.Popen([DOCKER, "start", "-ai", name], env=tls_daemon.env(),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out, err = proc.communicate(data, timeout=60)
        assert proc.returncode == 0, err
        assert out.split()[0].decode() == sha256(data)
    finally:
        tls_daemon.docker("rm", "-f", name)


def test_cp_both_ways_over_tls(tls_daemon: TlsDaemon, sleeper: str, tmp_path: Path):
    src = tmp_path / "blob"
    data = os.urandom(30 * 1024 * 1024)
    src.write_bytes(data)
    tls_daemon.out("cp", str(src), f"{sleeper}:/tmp/blob", timeout=120)
    assert tls_daemon.out("exec", sleeper, "sha256sum", "/tmp/blob").split()[0] == sha256(data)
    back = tmp_path / "back"
    tls_daemon.out("cp", f"{sleeper}:/tmp/blob", str(back), timeout=120)
    assert sha256(back.read_bytes()) == sha256(data)


def test_save_over_unix_load_over_tls(tls_daemon: TlsDaemon, tmp_path: Path):
    """An upload of a large body (docker load), checked by the image's ID."""
    tag = f"tls-load-{uuid.uuid4().hex[:8]}:latest"
    d = tls_daemon.daemon
    cid = d.out("create", "busybox", "true").strip()
    try:
        d.out("cp", "-", f"{cid}:/", input=_tar_of(os.urandom(5 * 1024 * 1024)))
        d.out("commit", cid, tag)
    finally:
        d.docker("rm", "-f", cid)
    archive = tmp_path / "img.tar"
    d.out("save", "-o", str(archive), tag)
    image_id = d.out("image", "inspect", "--format", "{{.Id}}", tag).strip()
    d.out("rmi", tag)
    res = tls_daemon.docker("load", "-i", str(archive), timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"Loaded image: {tag}" in res.stdout.decode()
    assert tls_daemon.out("image", "inspect", "--format", "{{.Id}}", tag).strip() == image_id
    tls_daemon.docker("rmi", tag)


def _tar_of(data: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("payload")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_build_and_pull_answer_as_over_the_unix_socket(tls_daemon: TlsDaemon, tmp_path: Path):
    """A build context upload, and a pull that fails, answered over TLS as
    over the unix socket."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY blob /blob\nRUN sha256sum /blob\n")
    blob = os.urandom(8 * 1024 * 1024)
    (ctx / "blob").write_bytes(blob)
    tag = f"tls-build-{uuid.uuid4().hex[:8]}"
    env_unix = tls_daemon.daemon.env()
    env_unix["DOCKER_BUILDKIT"] = "0"
    env_tls = tls_daemon.env()
    env_tls["DOCKER_BUILDKIT"] = "0"
    # the cold build over TLS (the context goes up through our TLS layer)...
    over_tls = tls_daemon.docker("build", "-q", "-t", tag + "-t", str(ctx), env=env_tls,
                                 timeout=180)
    assert over_tls.returncode == 0, over_tls.stderr
    got = tls_daemon.out("run", "--rm", tag + "-t", "sha256sum", "/blob").split()[0]
    assert got == sha256(blob)
    # ...and over the unix socket the same context gives the same image
    over_unix = tls_daemon.docker("build", "-q", "-t", tag + "-u", str(ctx), env=env_unix,
                                  timeout=180)
    assert over_unix.returncode == 0, over_unix.stderr
    assert over_tls.stdout == over_unix.stdout and over_tls.stdout.startswith(b"sha256:")
    tls_daemon.docker("rmi", tag + "-u", tag + "-t")
    ref = "127.0.0.1:1/nosuch/image:latest"
    pulled_unix = tls_daemon.docker("pull", ref, env=env_unix)
    pulled_tls = tls_daemon.docker("pull", ref, env=env_tls)
    assert (pulled_tls.returncode, pulled_tls.stdout, last_line(pulled_tls.stderr)) == \
        (pulled_unix.returncode, pulled_unix.stdout, last_line(pulled_unix.stderr))


def test_pull_progress_over_tls_as_over_unix(tls_daemon: TlsDaemon, tmp_path: Path):
    """A pull from a registry on 127.0.0.1 shows the same progress over TLS
    as over the unix socket, and gives the same image."""
    from tests.integration.images.registries import Registry

    reg = Registry(tmp_path / "registry").start()
    d = tls_daemon.daemon
    ref = f"{reg.host}/tls/progress:latest"
    try:
        cid = d.out("create", "busybox", "true").strip()
        try:
            d.out("cp", "-", f"{cid}:/", input=_tar_of(os.urandom(3 * 1024 * 1024)))
            d.out("commit", cid, ref)
        finally:
            d.docker("rm", "-f", cid)
        d.out("push", ref, timeout=120)
        image_id = d.out("image", "inspect", "--format", "{{.Id}}", ref).strip()
        shown = {}
        for name, env in (("unix", d.env()), ("tls", tls_daemon.env())):
            d.out("rmi", ref)
            res = tls_daemon.docker("pull", ref, env=env, timeout=120)
            assert res.returncode == 0, res.stderr
            shown[name] = sorted(res.stdout.decode().splitlines())
            assert d.out("image", "inspect", "--format", "{{.Id}}", ref).strip() == image_id
        assert shown["tls"] == shown["unix"]
        assert any("Pull complete" in ln for ln in shown["tls"])
        assert f"Status: Downloaded newer image for {ref}" in shown["tls"]
    finally:
        d.docker("rmi", ref)
        reg.stop()


def last_line(err: bytes) -> bytes:
    """The CLI's error, without the timestamped warnings before it."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(b"time=")]
    return lines[-1] if lines else b""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_interactive_run_over_tls_under_a_terminal(tls_daemon: TlsDaemon):
    """docker --tlsverify -H tcp://... run -it --rm busybox sh, typed into."""
    session = f"dy-tls-{uuid.uuid4().hex[:8]}"
    env = tls_daemon.env()
    cmd = (f"env DOCKER_CONFIG={env['DOCKER_CONFIG']} DOCKER_CERT_PATH={env['DOCKER_CERT_PATH']} "
           f"{DOCKER} --tlsverify -H {tls_daemon.url} run -it --rm busybox sh; "
           "echo EXITED=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd],
                   check=True)

    def pane() -> str:
        return subprocess.run(["tmux", "capture-pane", "-pt", session], capture_output=True,
                              text=True, check=False).stdout

    def wait_for(text: str) -> None:
        deadline = time.time() + 20
        while time.time() < deadline:
            if text in pane():
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen:\n{pane()}")

    def keys(*k: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)

    try:
        wait_for("/ #")
        keys("echo $((6*7))", "Enter")
        wait_for("\n42")
        keys("stty size", "Enter")
        wait_for("30 100")
        keys("exit 5", "Enter")
        wait_for("EXITED=5")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)


def test_without_a_client_certificate_the_same_command_is_refused(
        tls_daemon: TlsDaemon, cacert_only: Path):
    mark = len(tls_daemon.daemon.log())
    env = tls_daemon.env(cert_path=cacert_only)
    res = tls_daemon.docker("--tlsverify", "-H", tls_daemon.url, "run", "--rm", "busybox",
                            "true", env=env)
    assert res.returncode != 0
    assert "certificate required" in res.stderr.decode() or \
        "bad certificate" in res.stderr.decode(), res.stderr
    log = tls_daemon.log_since(mark)
    refused = [ln for ln in log.splitlines() if "tls: refused" in ln]
    assert refused and all("did not return a certificate" in ln for ln in refused)
    assert "Traceback" not in log
    # and the daemon still serves the others
    assert tls_daemon.out("version", "--format", "{{.Server.Version}}").strip()


def test_bad_clients_are_refused_and_the_daemon_keeps_serving(
        tls_daemon: TlsDaemon, tmp_path: Path):
    pki = tls_daemon.certs
    other = tmp_path / "other"
    make_certs(other, ["localhost"], days=2, server=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    issue(pki, "expired-cert.pem", "expired-key.pem", "late", -1)
    for f in ("expired-cert.pem", "expired-key.pem"):
        (pki / f).rename(bad / f)
    mark = len(tls_daemon.daemon.log())

    def tls_client(cert: Path | None, key: Path | None) -> bytes:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(pki / "ca.pem"))
        if cert and key:
            ctx.load_cert_chain(str(cert), str(key))
        try:
            with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100)
        except (ssl.SSLError, ConnectionError):
            return b""

    assert tls_client(other / "cert.pem", other / "key.pem") == b""        # another CA
    assert tls_client(bad / "expired-cert.pem", bad / "expired-key.pem") == b""
    assert tls_client(pki / "cert.pem", pki / "key.pem").startswith(b"HTTP/1.1 200")
    # plain HTTP to the TLS port: Go's answer, which the CLI shows
    res = tls_daemon.docker("-H", tls_daemon.url, "--tls=false", "version",
                            env={**tls_daemon.daemon.env(), "DOCKER_HOST": tls_daemon.url})
    assert "Client sent an HTTP request to an HTTPS server." in res.stderr.decode()
    # a client that never finishes its handshake is dropped (the fixture's 2 s)
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x10")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 6
    assert tls_client(pki / "cert.pem", pki / "key.pem").startswith(b"HTTP/1.1 200")
    log = tls_daemon.log_since(mark)
    refused = [ln for ln in log.splitlines() if "tls: refused" in ln]
    reasons = " | ".join(refused)
    assert "unable to get local issuer certificate" in reasons
    assert "certificate has expired" in reasons
    assert "plain HTTP on the TLS port" in reasons
    assert "did not finish within 2 s" in reasons
    # one line per refused client: the two bad certificates, the silent one,
    # and each connection the CLI tried in plain HTTP
    plain = sum("plain HTTP" in ln for ln in refused)
    assert len(refused) == 3 + plain
    assert "Traceback" not in log
