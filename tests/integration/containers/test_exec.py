"""Issue 3 §8: `docker exec` through the real CLI and docker-py."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest


@pytest.fixture
def web(daemon, name):
    """A running busybox container with an env, a user and a workdir to inherit."""
    daemon.out("run", "-d", "--name", name, "-e", "FROM_CONTAINER=yes", "-w", "/srv",
               "busybox", "sleep", "1000")
    yield name
    daemon.docker("rm", "-f", name)


def test_exit_code_and_streams(daemon, web):
    res = daemon.docker("exec", web, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert res.returncode == 7
    assert res.stdout == b"out\n"
    assert res.stderr == b"err\n"


def test_inherits_env_user_workdir(daemon, web):
    out = daemon.out("exec", web, "sh", "-c", "echo $FROM_CONTAINER; pwd; id -u")
    assert out.split() == ["yes", "/srv", "0"]


def test_user_workdir_env_flags(daemon, web):
    out = daemon.out("exec", "-u", "nobody", "-w", "/tmp", "-e", "FOO=bar",
                     "-e", "FROM_CONTAINER=over", web, "sh", "-c",
                     "id -un; pwd; echo $FOO $FROM_CONTAINER")
    assert out.split() == ["nobody", "/tmp", "bar", "over"]
    out = daemon.out("exec", "-u", "1234:5678", web, "id")
    assert "uid=1234" in out and "gid=5678" in out


def test_unknown_user(daemon, web):
    # the exec starts and fails: Docker's text on its output, exit code 126
    res = daemon.docker("exec", "-u", "nosuchuser", web, "true")
    assert res.returncode == 126
    assert res.stdout == b"unable to find user nosuchuser: no matching entries in passwd file\r\n"


def test_missing_executable(daemon, web):
    res = daemon.docker("exec", web, "nosuchcmd")
    assert res.returncode == 127
    assert b"OCI runtime exec failed" in res.stdout
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in res.stdout
    res = daemon.docker("exec", web, "/etc/passwd")   # not executable: EACCES
    assert res.returncode == 126


def test_stdin_pipe(daemon, web):
    res = daemon.docker("exec", "-i", web, "cat", input=b"hello\nworld\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hello\nworld\n"
    big = b"x" * 200_000
    res = daemon.docker("exec", "-i", web, "sh", "-c", "wc -c; exit 4", input=big)
    assert res.returncode == 4
    assert res.stdout.strip() == b"200000"


def test_tty(daemon, web):
    # The CLI needs a terminal for -t: run it under script(1).
    res = subprocess.run(["script", "-qec", f"docker exec -t {web} sh -c 'tty; exit 3'",
                          "/dev/null"], env=daemon.env(), capture_output=True, timeout=60,
                         check=False)
    assert res.returncode == 3
    assert b"/dev/pts/" in res.stdout


def test_privileged(daemon, web):
    def cap_eff(*flags: str) -> int:
        out = daemon.out("exec", *flags, web, "sh", "-c", "grep CapEff /proc/self/status")
        return int(out.split()[1], 16)

    plain, priv = cap_eff(), cap_eff("--privileged")
    assert priv & ~plain            # more capabilities than the container's defaults
    assert priv & (1 << 21)         # CAP_SYS_ADMIN


def test_detached(daemon, web):
    res = daemon.docker("exec", "-d", web, "sh", "-c", "sleep 0.3; echo done > /tmp/marker")
    assert res.returncode == 0 and res.stdout == b""
    deadline = time.time() + 10
    while time.time() < deadline:
        if daemon.docker("exec", web, "cat", "/tmp/marker").stdout == b"done\n":
            break
        time.sleep(0.2)
    else:
        pytest.fail("detached exec did not run")


def test_stopped_and_paused(daemon, name):
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "1000").strip()
    try:
        daemon.out("pause", name)
        res = daemon.docker("exec", name, "true")
        assert res.returncode != 0
        assert (f"Container {name} is paused, unpause the container before exec".encode()
                in res.stderr)
        daemon.out("unpause", name)
        daemon.out("kill", name)
        daemon.out("wait", name)
        res = daemon.docker("exec", name, "true")
        assert res.returncode != 0
        assert f"container {cid} is not running".encode() in res.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_unknown_container(daemon):
    res = daemon.docker("exec", "no-such-container-x", "true")
    assert res.returncode != 0
    assert b"No such container: no-such-container-x" in res.stderr


def test_docker_py_exec_run(client, web):
    c = client.containers.get(web)
    code, out = c.exec_run(["sh", "-c", "echo hi; exit 5"])
    assert (code, out) == (5, b"hi\n")
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, out, err) == (0, b"o\n", b"e\n")
    code, out = c.exec_run("id -un", user="nobody", workdir="/tmp", environment={"A": "1"})
    assert (code, out) == (0, b"nobody\n")
    code, out = c.exec_run("tty", tty=True)
    assert code == 0 and out.startswith(b"/dev/pts/")
    code, out = c.exec_run("sleep 5", detach=True)
    assert code is None and not out


def test_api_shapes_and_errors(client, web):
    api = client.api
    cid = client.containers.get(web).id
    with pytest.raises(Exception) as info:
        api.exec_create(web, [])
    assert "No exec command specified" in str(info.value)
    assert getattr(info.value, "status_code", None) == 400

    exec_id = api.exec_create(web, ["sh", "-c", "sleep 0.5; exit 3"], user="nobody")["Id"]
    assert exec_id in (api.inspect_container(web)["ExecIDs"] or [])
    ins = api.exec_inspect(exec_id)
    assert ins["Running"] is False and ins["ExitCode"] is None and ins["Pid"] == 0
    assert ins["ContainerID"] == cid
    assert ins["ProcessConfig"] == {"tty": False, "entrypoint": "sh",
                                    "arguments": ["-c", "sleep 0.5; exit 3"],
                                    "privileged": False, "user": "nobody"}
    assert ins["OpenStdout"] and ins["OpenStderr"] and not ins["OpenStdin"]
    assert ins["CanRemove"] is False

    assert not api.exec_start(exec_id, detach=True)
    ins = api.exec_inspect(exec_id)
    assert ins["Running"] is True and ins["Pid"] > 0 and ins["ExitCode"] is None
    with pytest.raises(Exception) as info:
        api.exec_start(exec_id, detach=True)
    assert getattr(info.value, "status_code", None) == 409
    assert f"exec command {exec_id} is already running" in str(info.value)

    deadline = time.time() + 10
    while api.exec_inspect(exec_id)["Running"] and time.time() < deadline:
        time.sleep(0.1)
    ins = api.exec_inspect(exec_id)
    assert ins["ExitCode"] == 3
    # A finished exec leaves the container's list but stays inspectable.
    assert exec_id not in (api.inspect_container(web)["ExecIDs"] or [])
    with pytest.raises(Exception) as info:
        api.exec_start(exec_id, detach=True)
    assert f"exec command {exec_id} has already run" in str(info.value)

    with pytest.raises(Exception) as info:
        api.exec_inspect("deadbeef")
    assert getattr(info.value, "status_code", None) == 404
    assert "No such exec instance: deadbeef" in str(info.value)
    with pytest.raises(Exception) as info:
        api.exec_resize("deadbeef", height=10, width=10)
    assert getattr(info.value, "status_code", None) == 404


def test_resize_tty_exec(client, web):
    api = client.api
    exec_id = api.exec_create(web, ["sh", "-c", "sleep 0.5; stty size"], tty=True)["Id"]
    sock = api.exec_start(exec_id, tty=True, socket=True)
    api.exec_resize(exec_id, height=33, width=77)
    raw = sock._sock if hasattr(sock, "_sock") else sock
    data = b""
    raw.settimeout(10)
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    raw.close()
    assert b"33 77" in data


def test_events(daemon, web):
    since = str(time.time() - 1)
    daemon.docker("exec", web, "sh", "-c", "exit 2")
    daemon.docker("exec", web, "true")
    out = daemon.out("events", "--since", since, "--until", str(time.time() + 0.5),
                     "--filter", f"container={web}", "--format", "{{json .}}", timeout=30)
    evs = [json.loads(line) for line in out.splitlines() if line.strip()]
    actions = [e["Action"] for e in evs]
    assert "exec_create: sh -c exit 2" in actions
    assert "exec_start: sh -c exit 2" in actions
    # dockerd joins entrypoint and arguments with a space, even with none.
    assert "exec_create: true " in actions
    dies = [e["Actor"]["Attributes"] for e in evs if e["Action"] == "exec_die"]
    assert [d["exitCode"] for d in dies] == ["2", "0"]
    assert all(d.get("execID") for d in dies)


def test_exec_records_go_with_container(client, daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "1000")
    api = client.api
    exec_id = api.exec_create(name, ["true"])["Id"]
    daemon.out("rm", "-f", name)
    with pytest.raises(Exception) as info:
        api.exec_inspect(exec_id)
    assert getattr(info.value, "status_code", None) == 404


def test_no_session_leftovers(daemon, web):
    for _ in range(3):
        daemon.docker("exec", web, "true")
        daemon.docker("exec", web, "nosuchcmd")
    time.sleep(0.5)
    execs = daemon.exec_root / "execs"
    assert not execs.exists() or list(execs.iterdir()) == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_interactive_shell_under_tmux(daemon, web):
    session = f"dy-{web}"
    env = " ".join(f"{k}={v}" for k, v in daemon.env().items()
                   if k in ("DOCKER_HOST", "DOCKER_CONFIG"))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"env {env} docker exec -it {web} sh; echo EXITED=$?; sleep 60"],
                   check=True)

    def pane() -> str:
        return subprocess.run(["tmux", "capture-pane", "-pt", session], capture_output=True,
                              text=True, check=False).stdout

    def wait_for(text: str) -> str:
        deadline = time.time() + 15
        while time.time() < deadline:
            p = pane()
            if text in p:
                return p
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen:\n{pane()}")

    try:
        wait_for("/srv #")
        subprocess.run(["tmux", "send-keys", "-t", session, "echo $((6*7))", "Enter"], check=True)
        wait_for("\n42")
        subprocess.run(["tmux", "send-keys", "-t", session, "stty size", "Enter"], check=True)
        wait_for("30 100")
        subprocess.run(["tmux", "send-keys", "-t", session, "exit 4", "Enter"], check=True)
        wait_for("EXITED=4")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
