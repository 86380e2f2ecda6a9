"""docker-py over TCP with mutual TLS: docker.from_env() with DOCKER_HOST,
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, and an explicit TLSConfig; hijacked
stdin ended by a half-close of the socket's write side (no close_notify)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.tls import TLSConfig
from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter
from tls_util import TlsDaemon


@pytest.fixture
def client(tls_daemon: TlsDaemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[docker.DockerClient]:
    for k, v in tls_daemon.env().items():
        if k.startswith("DOCKER_"):
            monkeypatch.setenv(k, v)
    # requests lets these override the CA docker-py gives it (README: TLS)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    c = docker.from_env(timeout=60)
    yield c
    c.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half_close(sock) -> None:  # type: ignore[no-untyped-def]
    """End stdin: shut down the write side under the TLS session (the
    SSLSocket's own shutdown would drop the session on our side too)."""
    socket.socket.shutdown(raw_socket(sock), socket.SHUT_WR)


def raw_socket(sock):  # type: ignore[no-untyped-def]
    """docker-py hands out the SSLSocket itself over TLS (a SocketIO wrapper
    over the unix socket)."""
    return getattr(sock, "_sock", sock)


def read_all(sock) -> bytes:  # type: ignore[no-untyped-def]
    """The container's stdout from a multiplexed stream, to its end."""
    frames = (demux_adaptor(*f) for f in frames_iter(sock, tty=False))
    return consume_socket_output(frames, demux=True)[0] or b""


def test_from_env_and_tlsconfig(client: docker.DockerClient, tls_daemon: TlsDaemon):
    assert client.api.base_url.startswith("https://")
    assert client.ping() is True
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
    pki = tls_daemon.certs
    tls = TLSConfig(client_cert=(str(pki / "cert.pem"), str(pki / "key.pem")),
                    ca_cert=str(pki / "ca.pem"), verify=True)
    explicit = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_daemon.port}", tls=tls,
                                   version="auto")
    try:
        assert explicit.info()["ID"] == client.info()["ID"]
    finally:
        explicit.close()
    # a client without a certificate gets nowhere
    bare = docker.DockerClient(base_url=f"https://127.0.0.1:{tls_daemon.port}",
                               tls=TLSConfig(ca_cert=str(pki / "ca.pem"), verify=True),
                               version="1.44")
    try:
        with pytest.raises(Exception, match="(?i)ssl|certificate|connection"):
            bare.ping()
    finally:
        bare.close()


def test_exec_stdin_through_the_socket_with_half_close(client: docker.DockerClient):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        data = os.urandom(4 * 1024 * 1024)
        ex = client.api.exec_create(c.id, ["sh", "-c", "cat > /tmp/in; sha256sum /tmp/in"],
                                    stdin=True)
        sock = client.api.exec_start(ex["Id"], socket=True)
        raw_socket(sock).sendall(data)
        half_close(sock)
        out = read_all(sock)
        sock.close()
        assert out.split()[0].decode() == sha256(data)
        assert client.api.exec_inspect(ex["Id"])["ExitCode"] == 0
    finally:
        c.remove(force=True)


def test_attach_socket_with_half_close(client: docker.DockerClient):
    c = client.containers.create("busybox", ["sh", "-c", "sha256sum; echo done"],
                                 stdin_open=True)
    try:
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        c.start()
        data = os.urandom(1024 * 1024)
        raw_socket(sock).sendall(data)
        half_close(sock)
        out = read_all(sock)
        sock.close()
        assert out.split()[0].decode() == sha256(data) and out.endswith(b"done\n")
        assert c.wait(timeout=30)["StatusCode"] == 0
    finally:
        c.remove(force=True)


def test_logs_follow_archive_and_load(client: docker.DockerClient, tmp_path: Path):
    c = client.containers.run("busybox", ["sh", "-c", ("for i in $(seq 1 100); do echo l $i; "
                                                      "sleep 0.01; done")], detach=True)
    try:
        streamed = b"".join(c.logs(stream=True, follow=True))
        assert streamed == b"".join(b"l %d\n" % i for i in range(1, 101))
        data = os.urandom(20 * 1024 * 1024)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("blob")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue())
        stream, _stat = c.get_archive("/tmp/blob")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
            got = t.extractfile("blob").read()  # type: ignore[union-attr]
        assert sha256(got) == sha256(data)
        tag = f"tls-py-{uuid.uuid4().hex[:8]}:latest"
        img = c.commit(repository=tag.split(":")[0], tag="latest")
        saved = b"".join(img.save())
        client.images.remove(img.id, force=True)
        loaded = client.images.load(saved)
        assert [i.id for i in loaded] == [img.id]
        client.images.remove(img.id, force=True)
    finally:
        c.remove(force=True)
