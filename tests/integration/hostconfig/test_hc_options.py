"""No option is accepted and then ignored: what is not done yet is refused
at create with a clear 400 (or Docker's 404 for an unknown network), what
is done is shown working here, and bad input is a 4xx, never a 500."""

from __future__ import annotations

import base64
import glob
import json
import os
import socket
import time
import uuid
from pathlib import Path

import docker
import pytest
from hc_util import run_out, traces_of

from tests.integration.robustutil import UnixHTTP


def api(daemon, method: str, url: str, body: bytes | str | None = None  # type: ignore[no-untyped-def]
        ) -> tuple[int, dict | list | None]:
    """A raw request with exactly these body bytes (clients would fix the case
    of field names or reject odd JSON); returns status and decoded body."""
    conn = UnixHTTP(daemon.socket)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else None
    finally:
        conn.close()


def create(daemon, body: dict | str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    text = body if isinstance(body, str) else json.dumps(body)
    status, out = api(daemon, "POST", "/v1.51/containers/create", text)
    assert isinstance(out, dict)
    if status == 201:
        daemon.docker("rm", "-f", out["Id"])
    return status, out


def _ids(daemon) -> set[str]:  # type: ignore[no-untyped-def]
    return set(daemon.out("ps", "-aq", "--no-trunc").split())


def _no_python(message: str) -> None:
    assert "Error:" not in message and "Traceback" not in message, message


# ---------------------------------------------------------------- refused

CLI_REFUSED = [
    (("--storage-opt", "size=1G"), "--storage-opt is supported only for overlay over xfs"),
]


@pytest.mark.parametrize(("args", "text"), CLI_REFUSED, ids=[" ".join(a) for a, _ in CLI_REFUSED])
def test_cli_options_not_done_yet_are_refused(failed_run, args, text):
    code, err = failed_run(*args)
    assert code == 125, err
    assert text in err
    assert not failed_run.last_ids          # refused at create: nothing was made


API_REFUSED = [
    ({"HostConfig": {"Mounts": [{"Type": "weird", "Target": "/x"}]}}, 400,
     'invalid mount config for type "weird": mount type unknown'),
    ({"HostConfig": {"VolumesFrom": ["nonexistent"]}}, 400, "No such container: nonexistent"),
    ({"HostConfig": {"Binds": ["/tmp:/x:weird"]}}, 400, "invalid mode: weird"),
    ({"HostConfig": {"Cgroup": "container:x"}}, 400, "HostConfig.Cgroup is not supported"),
    ({"HostConfig": {"KernelMemoryTCP": 1 << 20}}, 400, "KernelMemoryTCP is not supported"),
    ({"HostConfig": {"CpuCount": 1}}, 400, "CpuCount is a Windows option"),
    ({"hostconfig": {"storageopt": {"size": "1G"}}}, 400, "--storage-opt is supported only"),
]


@pytest.mark.parametrize(("extra", "status", "text"), API_REFUSED,
                         ids=[json.dumps(e) for e, _, _ in API_REFUSED])
def test_api_fields_not_done_yet_are_refused(daemon, extra, status, text):
    before = _ids(daemon)
    got, out = create(daemon, {"Image": "busybox", "Cmd": ["true"], **extra})
    assert (got, out["message"][:len(text)]) == (status, text)
    assert _ids(daemon) == before


@pytest.mark.parametrize("extra,name", [
    ({"HostConfig": {"NetworkMode": "weird"}}, "weird"),
    ({"NetworkingConfig": {"EndpointsConfig": {"other": {}}}}, "other"),
])
def test_an_unknown_network_fails_the_start_not_the_create(daemon, extra, name):
    """As dockerd: create succeeds and start says the network is not found
    (a 404 at create would make the docker CLI try to pull the image)."""
    got, out = api(daemon, "POST", "/v1.51/containers/create",
                   json.dumps({"Image": "busybox", "Cmd": ["true"], **extra}))
    assert got == 201, out
    try:
        res = daemon.docker("start", out["Id"])
        assert res.returncode != 0
        assert f"network {name} not found" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", out["Id"])


def test_run_on_an_unknown_network_leaves_nothing(failed_run):
    code, err = failed_run("--network", "weird")
    assert code == 125 and "network weird not found" in err
    assert "Unable to find image" not in err   # the CLI did not try to pull


def test_options_that_exist_still_work(daemon):
    assert run_out(daemon, "--network", "host", "-p", "80:80", "busybox", "echo", "a") == "a\n"
    for mode in ("none", "bridge", "default"):
        assert run_out(daemon, "--network", mode, "busybox", "echo", "b") == "b\n"
    assert run_out(daemon, "--tmpfs", "/scratch", "busybox", "sh", "-c",
                   "touch /scratch/x && echo c") == "c\n"


# ---------------------------------------------------------------- cgroup parent

def _cgroup_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            out[c] = path
    return out


def _drop_cgroup(rel: str) -> None:
    for hier in glob.glob("/sys/fs/cgroup/*/"):
        top = Path(hier, rel)
        for d in sorted(glob.glob(f"{top}/**/", recursive=True), key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.mark.parametrize("form", ["/{p}", "{p}/sub", "../../../{p}"])
def test_cgroup_parent_places_the_container(daemon, client, name, form):
    """--cgroup-parent puts the container's cgroup under that parent (in every
    v1 hierarchy, or the one v2 tree), confined to the cgroup root; stats,
    top, update and removal follow it."""
    top = f"dy-parent-{uuid.uuid4().hex[:8]}"
    parent = form.format(p=top)
    want = "/" + os.path.normpath("/" + parent).lstrip("/")
    try:
        # the host cgroup namespace, so the path is shown whole on v2 too
        cid = daemon.out("run", "-d", "--name", name, "--cgroup-parent", parent,
                         "--cgroupns", "host", "busybox",
                         "sh", "-c", "cat /proc/self/cgroup; sleep 300").strip()
        deadline = time.time() + 10
        while not daemon.out("logs", name) and time.time() < deadline:
            time.sleep(0.05)
        lines = _cgroup_lines(daemon.out("logs", name))
        assert lines.get("memory", lines.get("")) == f"{want}/{cid}"
        assert not os.path.exists(f"/{top}") and not os.path.exists(f"/sys/fs/{top}")
        v1 = os.path.isdir("/sys/fs/cgroup/memory")
        mem_dir = Path("/sys/fs/cgroup/memory" if v1 else "/sys/fs/cgroup", want.lstrip("/"),
                       cid)
        assert mem_dir.is_dir()
        # stats and top read the container's own cgroup
        st = client.api.stats(cid, stream=False)
        assert st["memory_stats"].get("usage", 0) > 0 and st["pids_stats"]["current"] >= 1
        top_out = client.api.top(cid)
        assert any("sleep 300" in p[-1] for p in top_out["Processes"])
        # update writes there
        daemon.out("update", "--memory", "64m", "--memory-swap", "128m", name)
        limit = (mem_dir / ("memory.limit_in_bytes" if v1 else "memory.max")).read_text()
        assert limit.strip() == str(64 << 20)
        daemon.out("rm", "-f", name)
        assert not mem_dir.exists()
        assert traces_of(daemon, cid) == []
    finally:
        daemon.docker("rm", "-f", name)
        _drop_cgroup(top)


def test_cgroup_parent_with_a_newline_is_refused(daemon):
    before = _ids(daemon)
    status, out = create(daemon, {"Image": "busybox", "HostConfig": {"CgroupParent": "a\nb"}})
    assert (status, out["message"]) == (
        400, 'invalid cgroup-parent "a\\nb": control characters are not allowed')
    assert _ids(daemon) == before


# ---------------------------------------------------------------- bad input: 4xx

ETC_INJECTION = [
    ({"HostConfig": {"Dns": ["1.1.1.1\nnameserver 6.6.6.6"]}},
     'invalid IP address in dns: "1.1.1.1\\nnameserver 6.6.6.6"'),
    ({"HostConfig": {"DnsSearch": ["a.example\nnameserver 6.6.6.6"]}},
     '"a.example\\nnameserver 6.6.6.6" is not a valid domain'),
    ({"HostConfig": {"DnsOptions": ["ndots:1\nnameserver 6.6.6.6"]}}, "invalid dns option"),
    ({"HostConfig": {"ExtraHosts": ["evil\n6.6.6.6 bank:1.2.3.4"]}}, "bad format for add-host"),
    ({"HostConfig": {"ExtraHosts": ["a:1.2.3.4\n6.6.6.6 bank"]}},
     "invalid IP address in add-host"),
    ({"Hostname": "a\nb"}, 'invalid hostname "a\\nb"'),
    ({"Domainname": "x\n6.6.6.6 bank"}, "invalid domainname"),
]


@pytest.mark.parametrize(("extra", "text"), ETC_INJECTION,
                         ids=[json.dumps(e) for e, _ in ETC_INJECTION])
def test_etc_file_injection_is_refused_at_create(daemon, extra, text):
    before = _ids(daemon)
    status, out = create(daemon, {"Image": "busybox", "Cmd": ["true"], **extra})
    assert status == 400 and out["message"].startswith(text), out
    assert _ids(daemon) == before


NUL_FIELDS = [{"WorkingDir": "/tmp\u0000x"}, {"Cmd": ["echo", "a\u0000b"]},
              {"Entrypoint": ["/bin/echo\u0000"]}, {"Env": ["A=1\u0000B=2"]}]


@pytest.mark.parametrize("extra", NUL_FIELDS, ids=[next(iter(e)) for e in NUL_FIELDS])
def test_nul_in_process_strings_is_refused_at_create(daemon, extra):
    status, out = create(daemon, {"Image": "busybox", "Cmd": ["true"], **extra})
    assert status == 400 and out["message"].endswith("contains a NUL byte"), out


def test_integers_out_of_int64_are_refused_at_create_and_update(daemon, name):
    big = 2**70
    for field, path in (("Memory", "Resources.Memory"), ("PidsLimit", "Resources.PidsLimit")):
        status, out = create(daemon, {"Image": "busybox",
                                      "HostConfig": {field: big}})
        assert (status, out["message"]) == (
            400, (f"invalid JSON: json: cannot unmarshal number {big} into Go struct field "
                 f"HostConfig.HostConfig.{path} of type int64"))
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    try:
        status, out = api(daemon, "POST", f"/v1.51/containers/{cid}/update",
                          '{"PidsLimit": 1e23}')
        assert (status, out["message"]) == (  # type: ignore[index]
            400, ("invalid JSON: json: cannot unmarshal number 1e23 into Go struct field "
                 "UpdateConfig.Resources.PidsLimit of type int64"))
        status, out = api(daemon, "POST", f"/v1.51/containers/{cid}/update",
                          json.dumps({"Memory": big}))
        assert status == 400
        # inspect still decodes: nothing out of range was stored
        daemon.out("inspect", name)
        # a value the kernel refuses is the client's: 400, and nothing changes
        status, out = api(daemon, "POST", f"/v1.51/containers/{cid}/update",
                          json.dumps({"PidsLimit": 2**62}))
        assert status == 400 and out["message"].startswith(  # type: ignore[index]
            f"Cannot update container {cid}: "), out
        assert daemon.out("inspect", "-f", "{{.HostConfig.PidsLimit}}", name).strip() in (
            "<nil>", "0")
        status, out = api(daemon, "POST", f"/v1.51/containers/{cid}/update",
                          json.dumps({"CgroupParent": "/elsewhere"}))
        assert (status, out["message"]) == (  # type: ignore[index]
            400, ("CgroupParent cannot be changed by an update: it only takes effect when the "
                 "container is created"))
    finally:
        daemon.docker("rm", "-f", name)


def test_absurdly_nested_body_is_a_400(daemon):
    status, out = api(daemon, "POST", "/v1.51/containers/create", "[" * 100_000)
    assert (status, out["message"]) == (  # type: ignore[index]
        400, "invalid JSON: invalid character '[' exceeded max depth")


def test_top_with_bad_ps_args_is_a_400(daemon, name):
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    try:
        status, out = api(daemon, "GET", f"/v1.51/containers/{cid}/top?ps_args=-ef%00x")
        assert status == 400 and "NUL" in out["message"], out  # type: ignore[index]
        status, out = api(daemon, "GET", f"/v1.51/containers/{cid}/top?ps_args=--no-such-opt")
        assert status == 400 and out["message"].startswith("ps: "), out  # type: ignore[index]
        _no_python(out["message"])  # type: ignore[index]
    finally:
        daemon.docker("rm", "-f", name)


def test_name_filter_that_is_not_a_regexp_matches_nothing(daemon, name):
    daemon.out("create", "--name", name, "busybox", "true")
    try:
        res = daemon.docker("ps", "-a", "--filter", "name=[")
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode().splitlines()[1:] == []
        assert name in daemon.out("ps", "-a", "--filter", f"name={name}")
    finally:
        daemon.docker("rm", "-f", name)


def test_exec_with_bad_detach_keys_is_a_400(daemon, client, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            client.api.exec_create(name, ["true"], detach_keys="bogus-keys")
        assert e.value.status_code == 400
        assert "Invalid escape keys (bogus-keys) provided" in str(e.value.explanation)
    finally:
        daemon.docker("rm", "-f", name)


# ---------------------------------------------------------------- field names in any case

def test_create_fields_match_case_insensitively(daemon, name):
    body = ('{"image": "busybox", "CMD": ["sleep", "300"], "labels": {"Mixed.Case": "kept"},'
            ' "hostconfig": {"memory": 67108864, "memoryswap": 134217728,'
            ' "pidsLimit": 33, "sysctls": {"net.ipv4.ip_forward": "0"}}}')
    status, out = api(daemon, "POST", f"/v1.51/containers/create?name={name}", body)
    assert status == 201, out
    try:
        daemon.out("start", name)
        got = json.loads(daemon.out("inspect", name))[0]
        assert got["Config"]["Labels"]["Mixed.Case"] == "kept"
        assert got["HostConfig"]["Memory"] == 64 << 20
        assert got["HostConfig"]["PidsLimit"] == 33
        assert got["HostConfig"]["Sysctls"] == {"net.ipv4.ip_forward": "0"}
        assert daemon.out("exec", name, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
        stats = json.loads(daemon.out("stats", "--no-stream", "--format", "{{json .}}", name))
        assert stats["MemUsage"].endswith("/ 64MiB")
    finally:
        daemon.docker("rm", "-f", name)


def test_docker_py_exec_detach_keys_from_its_config_file(daemon, name, tmp_path,
                                                         monkeypatch):
    """docker-py sends its config file's detachKeys as `detachKeys`."""
    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    c = docker.APIClient(base_url=daemon.host, version="auto")
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        eid = c.exec_create(name, ["cat"], stdin=True, tty=True)["Id"]
        assert base64.b64decode(c.exec_inspect(eid)["DetachKeys"]) == b"\x18"
        sock = c.exec_start(eid, tty=True, socket=True)._sock
        sock.settimeout(10)
        sock.sendall(b"hi\n")
        data = b""
        while b"hi" not in data:        # cat's tty echoes it
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        sock.sendall(b"\x18")
        while sock.recv(4096):          # the stream ends: detached
            pass
        sock.close()
        assert c.exec_inspect(eid)["Running"]     # and cat runs on
    finally:
        c.close()
        daemon.docker("rm", "-f", name)


def test_exec_start_body_in_any_case(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        status, out = api(daemon, "POST", f"/v1.51/containers/{name}/exec",
                          '{"cmd": ["sh", "-c", "echo ran > /tmp/ran"]}')
        assert status == 201
        status, _ = api(daemon, "POST", f"/v1.51/exec/{out['Id']}/start",  # type: ignore[index]
                        '{"detach": true}')
        assert status == 200
        deadline = time.time() + 10
        while daemon.docker("exec", name, "cat", "/tmp/ran").returncode and \
                time.time() < deadline:
            time.sleep(0.1)
        assert daemon.out("exec", name, "cat", "/tmp/ran") == "ran\n"
    finally:
        daemon.docker("rm", "-f", name)


# ---------------------------------------------------------------- what is done, shown

def _run_api(daemon, name: str, body: dict) -> str:  # type: ignore[no-untyped-def]
    status, out = api(daemon, "POST", f"/v1.51/containers/create?name={name}",
                      json.dumps({"Image": "busybox", **body}))
    assert status == 201, out
    daemon.out("start", name)
    daemon.out("wait", name)
    return daemon.out("logs", name)


def test_tty_and_console_size(daemon, name):
    try:
        out = _run_api(daemon, name, {"Tty": True, "Cmd": ["sh", "-c", "tty; stty size"],
                                      "HostConfig": {"ConsoleSize": [30, 100]}})
        assert out.replace("\r", "").splitlines() == ["/dev/pts/0", "30 100"]
    finally:
        daemon.docker("rm", "-f", name)


def test_network_disabled(daemon, name):
    try:
        out = _run_api(daemon, name, {"NetworkDisabled": True,
                                      "Cmd": ["sh", "-c", "ls /sys/class/net"]})
        assert out.split() == ["lo"]
    finally:
        daemon.docker("rm", "-f", name)


def test_entrypoint(daemon):
    assert run_out(daemon, "--entrypoint", "echo", "busybox", "from", "entrypoint") == \
        "from entrypoint\n"


def test_stop_signal_and_timeout(daemon, name):
    try:
        daemon.out("run", "-d", "--name", name, "--stop-signal", "USR1", "busybox", "sh", "-c",
                   "trap 'exit 42' USR1; while :; do sleep 0.1; done")
        time.sleep(0.3)
        daemon.out("stop", name)
        assert daemon.out("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "42"
        daemon.out("rm", name)
        daemon.out("run", "-d", "--name", name, "--stop-timeout", "1", "busybox", "sh", "-c",
                   "trap '' TERM; while :; do sleep 0.1; done")
        time.sleep(0.3)
        t0 = time.monotonic()
        daemon.out("stop", name)
        assert time.monotonic() - t0 < 5
        assert daemon.out("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "137"
    finally:
        daemon.docker("rm", "-f", name)


def test_stdin_once(daemon, client, name):
    """With StdinOnce, the container's stdin closes when the attached client
    that started it goes away, so cat ends."""
    status, out = api(daemon, "POST", f"/v1.51/containers/create?name={name}", json.dumps(
        {"Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True,
         "AttachStdin": True}))
    assert status == 201, out
    cid = out["Id"]  # type: ignore[index]
    try:
        sock = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        client.api.start(cid)
        sock._sock.sendall(b"hello\n")
        sock._sock.shutdown(socket.SHUT_WR)     # the client's stdin ends
        assert client.api.wait(cid, timeout=20)["StatusCode"] == 0
        sock._sock.close()
    finally:
        client.api.remove_container(cid, force=True)


def test_annotations_reach_the_runtime(daemon, name):
    try:
        cid = daemon.out("run", "-d", "--name", name, "--annotation", "org.example.k=v",
                         "busybox", "sleep", "300").strip()
        spec = json.loads((daemon.exec_root / "bundles" / cid / "config.json").read_text())
        assert spec["annotations"]["org.example.k"] == "v"
    finally:
        daemon.docker("rm", "-f", name)


def test_device_cgroup_rule(daemon):
    script = "mknod /tmp/d c 42 0 && cat /tmp/d 2>&1; true"
    denied = run_out(daemon, "--cap-add", "MKNOD", "busybox", "sh", "-c", script)
    assert "Operation not permitted" in denied
    allowed = run_out(daemon, "--cap-add", "MKNOD", "--device-cgroup-rule", "c 42:* rwm",
                      "busybox", "sh", "-c", script)
    assert "No such device" in allowed
