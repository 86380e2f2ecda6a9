"""POST /build through the raw API and docker-py: hostile contexts, option
checks, ADD from a URL, isolation and limits of RUN steps, a client that
leaves, the cache and its pruning."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.build.buildutil import UnixHTTP, post_build, stream_text, tar_of


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b""
            ) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.size = len(data)
    return ti, data


def _hostile_tar(members: list[tuple[tarfile.TarInfo, bytes]], dockerfile: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        df = dockerfile.encode()
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(df)
        tf.addfile(ti, io.BytesIO(df))
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.fixture
def tag() -> str:
    return f"ba-{uuid.uuid4().hex[:10]}"


def _host_files() -> set[str]:
    return {p for p in ("/etc/pwned", "/tmp/pwned", "/pwned") if os.path.exists(p)}


@pytest.mark.parametrize(("members", "needle"), [
    ([_member("../pwned", data=b"x")], "is outside of the build context"),
    ([_member("a/../../pwned", data=b"x")], "is outside of the build context"),
    ([_member("evil", tarfile.SYMTYPE, "../../../../tmp")], "invalid symlink"),
    ([_member("dir/evil", tarfile.SYMTYPE, "../../etc")], "invalid symlink"),
    ([_member("hl", tarfile.LNKTYPE, "/etc/passwd")], "invalid hardlink"),
    ([_member("dev", tarfile.CHRTYPE)], "device file"),
])
def test_hostile_contexts_are_refused(daemon, members, needle):
    before = _host_files()
    status, _, text = post_build(daemon.socket, _hostile_tar(members, "FROM busybox\nCOPY . /\n"))
    assert status == 400, text
    assert needle in json.loads(text)["message"]
    assert _host_files() == before
    assert not list((daemon.data_root / "builder" / "builds").iterdir())


def test_absolute_names_and_links_stay_inside(daemon, tag):
    body = _hostile_tar([_member("/etc/pwned", data=b"inside"),
                         _member("abs", tarfile.SYMTYPE, "/etc/pwned")],
                        "FROM busybox\nCOPY abs /copied\nCOPY etc/pwned /direct\n")
    status, records, text = post_build(daemon.socket, body, t=tag)
    assert status == 200, text
    assert "error" not in records[-1], records[-1]
    assert not os.path.exists("/etc/pwned")
    assert daemon.out("run", "--rm", tag, "cat", "/copied", "/direct") == "insideinside"


def test_copy_source_outside_or_missing_is_a_stream_error(daemon):
    for line, msg in (("COPY ../x /", ("COPY failed: forbidden path outside the build context: "
                                      "../x ()")),
                      ("COPY nothere /", ("COPY failed: file not found in build context or "
                                         "excluded by .dockerignore: stat nothere: file does "
                                         "not exist")),
                      ("COPY --from=nostage /a /b", "invalid from flag value nostage: "),
                      ("COPY --from=5 /a /b", "invalid from flag value 5: index out of bounds")):
        status, records, text = post_build(daemon.socket,
                                           tar_of({"Dockerfile": f"FROM busybox\n{line}\n"}))
        assert status == 200, text
        assert records[-1]["error"].startswith(msg), records[-1]
        assert records[-1]["errorDetail"]["message"] == records[-1]["error"]


def test_option_checks(daemon):
    ctx = tar_of({"Dockerfile": "FROM busybox\n"})
    for query, status, msg in (
            ({"squash": "1"}, 400, "squash is only supported with experimental mode"),
            ({"isolation": "hyperv"}, 400, 'unsupported isolation: "hyperv"'),
            ({"platform": "foobar"}, 400, "unknown operating system or architecture"),
            ({"buildargs": "{bad"}, 400, "error reading build args"),
            ({"t": "bad:tag:x"}, 400, ""),
            ({"t": "x@sha256:" + "a" * 64}, 400, "build tag cannot contain a digest"),
            ({"remote": "https://example.invalid/ctx.tar"}, 501, "remote build contexts"),
            ({"version": "2"}, 501, "BuildKit"),
            ({"securityopt": "seccomp=unconfined"}, 400, ("security options are not "
                                                         "supported on linux")),
            ({"dockerfile": "../Dockerfile"}, 400, ("forbidden path outside the build "
                                                   "context: ../Dockerfile ()")),
            ({"dockerfile": "missing.df"}, 400, ("Cannot locate specified Dockerfile: "
                                                "missing.df"))):
        got, _, text = post_build(daemon.socket, ctx, **query)
        assert got == status, (query, text)
        assert msg in json.loads(text)["message"], (query, text)


def test_compressed_contexts_and_plain_dockerfile_body(daemon, tag):
    payload = os.urandom(300_000)
    files = {"Dockerfile": "FROM busybox\nCOPY blob /blob\n", "blob": payload}
    digest = hashlib.sha256(payload).hexdigest()
    for mode in ("w:gz", "w:bz2", "w:xz"):
        status, records, text = post_build(daemon.socket, tar_of(files, mode=mode),
                                           t=f"{tag}-{mode[2:]}")
        assert status == 200 and "error" not in records[-1], text
        out = daemon.out("run", "--rm", f"{tag}-{mode[2:]}", "sha256sum", "/blob")
        assert out.split()[0] == digest
    status, records, text = post_build(daemon.socket, b"FROM busybox\nLABEL plain=1\n", t=tag)
    assert status == 200, text
    assert json.loads(daemon.out("image", "inspect", "-f", "{{json .Config.Labels}}", tag)) \
        == {"plain": "1"}


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"nope")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server():
    _Handler.body = os.urandom(200_000)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_add_from_url(daemon, http_server, tag):
    port = http_server.server_address[1]
    df = (f"FROM busybox\nADD http://127.0.0.1:{port}/dir/data.bin /remote/\n"
          f"ADD http://127.0.0.1:{port}/dir/data.bin /renamed.bin\n")
    status, records, text = post_build(daemon.socket, tar_of({"Dockerfile": df}), t=tag)
    assert status == 200 and "error" not in records[-1], text
    want = hashlib.sha256(_Handler.body).hexdigest()
    out = daemon.out("run", "--rm", tag, "sh", "-c",
                     "sha256sum /remote/data.bin /renamed.bin; stat -c '%a %Y' /renamed.bin")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == [want, want]
    assert lines[2] == "600 1445412480"
    bad = f"FROM busybox\nADD http://127.0.0.1:{port}/missing /x\n"
    status, records, _ = post_build(daemon.socket, tar_of({"Dockerfile": bad}))
    assert records[-1]["error"].startswith(f"failed to GET http://127.0.0.1:{port}/missing "
                                           "with status 404")
    cp = f"FROM busybox\nCOPY http://127.0.0.1:{port}/dir/data.bin /x\n"
    status, records, _ = post_build(daemon.socket, tar_of({"Dockerfile": cp}))
    assert records[-1]["error"] == "COPY failed: source can't be a URL for COPY"


def test_run_steps_get_the_builds_network_hosts_and_limits(daemon, tag):
    df = ("FROM busybox\nRUN grep -q 'extra.test' /etc/hosts && cat /etc/hosts > /hosts\n"
          "RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /mem 2>/dev/null || "
          "cat /sys/fs/cgroup/memory.max > /mem\nRUN ip -o link | grep -c -v ' lo:' > /links "
          "|| true\n")
    status, records, text = post_build(daemon.socket, tar_of({"Dockerfile": df}), t=tag,
                                       extrahosts="extra.test:10.9.8.7", memory="67108864",
                                       networkmode="none")
    assert status == 200 and "error" not in records[-1], text
    out = daemon.out("run", "--rm", tag, "cat", "/hosts", "/mem", "/links")
    assert "10.9.8.7\textra.test" in out
    assert "67108864" in out
    assert out.rstrip().endswith("0")              # --network none: only lo
    status, records, _ = post_build(daemon.socket, tar_of({"Dockerfile": df}),
                                    networkmode="no-such-net", nocache="1")
    assert "error" in records[-1] and "no-such-net" in records[-1]["error"]


def _containers(daemon) -> set[str]:
    return set(daemon.out("ps", "-aq", "--no-trunc").split())


def test_client_leaving_cancels_the_build(daemon):
    before = _containers(daemon)
    body = tar_of({"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    c = UnixHTTP(daemon.socket)
    c.request("POST", "/v1.44/build?nocache=1", body=body,
              headers={"Content-Type": "application/x-tar"})
    r = c.getresponse()
    seen = b""
    deadline = time.time() + 30
    while b"started" not in seen and time.time() < deadline:
        seen += r.read1(65536)
    assert b"started" in seen
    assert len(_containers(daemon) - before) == 1
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    deadline = time.time() + 30
    while _containers(daemon) != before and time.time() < deadline:
        time.sleep(0.2)
    assert _containers(daemon) == before
    builds = daemon.data_root / "builder"
    deadline = time.time() + 10
    while any((builds / d).iterdir() for d in ("builds", "layers")) and time.time() < deadline:
        time.sleep(0.2)
    assert not list((builds / "builds").iterdir())
    assert not list((builds / "layers").iterdir())
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(builds) not in mounts


def test_docker_py_build_and_errors(client, tag):
    import docker

    image, logs = client.images.build(fileobj=io.BytesIO(b"FROM busybox\nCMD echo hello world\n"),
                                      tag=tag)
    assert client.containers.run(image, remove=True) == b"hello world\n"
    assert any("Successfully built" in x.get("stream", "") for x in logs)
    with pytest.raises(docker.errors.BuildError) as e:
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"))
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in str(e.value)
    stream = client.api.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo x >&2\n"),
                              decode=True, nocache=True)
    lines = [c.get("stream") for c in stream]
    assert "\x1b[91mx\n\x1b[0m" in lines
    auxes = [c for c in client.api.build(fileobj=io.BytesIO(b"FROM busybox\nENV A=1\n"),
                                         decode=True) if "aux" in c]
    assert auxes and auxes[-1]["aux"]["ID"].startswith("sha256:")


def test_cache_from_and_prune(daemon, client, tag):
    df = f"FROM busybox\nENV FOO={tag}\nRUN touch /baz\nRUN touch /bax\n".encode()
    client.images.build(fileobj=io.BytesIO(df), tag=tag)
    hits = [c for c in client.api.build(fileobj=io.BytesIO(df), tag=tag + "-2",
                                        cache_from=[tag], decode=True)
            if "Using cache" in c.get("stream", "")]
    assert len(hits) == 3
    client.images.remove(tag + "-2")
    misses = [c for c in client.api.build(fileobj=io.BytesIO(df), tag=tag + "-2",
                                          cache_from=["nosuchtag"], decode=True)
              if "Using cache" in c.get("stream", "")]
    assert misses == []
    client.images.remove(tag + "-2")
    client.images.remove(tag)
    report = client.api.prune_builds()
    assert isinstance(report["SpaceReclaimed"], int)
    _status, records, _ = post_build(daemon.socket, tar_of({"Dockerfile": df.decode()}))
    assert not any("Using cache" in r.get("stream", "") for r in records)
    assert stream_text(records).count("Running in") == 2
