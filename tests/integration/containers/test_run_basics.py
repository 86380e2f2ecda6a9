"""Issue 3 acceptance: docker run basics through the real CLI and docker-py."""

from __future__ import annotations

import time


def test_run_echo_hello(daemon):
    res = daemon.docker("run", "--rm", "busybox", "echo", "hello")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"hello\n"


def test_run_exit_code(daemon):
    res = daemon.docker("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert res.returncode == 3


def test_stdin_pipe(daemon):
    res = daemon.docker("run", "-i", "--rm", "busybox", "cat", input=b"hi\n")
    assert res.stdout == b"hi\n"


def test_stdout_and_stderr_separate(daemon):
    res = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert res.stdout == b"out\n"
    assert res.stderr == b"err\n"


def test_missing_executable_exit_127(daemon):
    res = daemon.docker("run", "--rm", "busybox", "nosuchcommand")
    assert res.returncode == 127
    assert b"not found" in res.stderr


def test_docker_py_run(client):
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_docker_py_detached(client, name):
    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 0.2; echo b"],
                              detach=True, name=name)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        assert c.logs() == b"a\nb\n"
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)


def test_logs_follow_tail(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
               "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo last")
    try:
        time.sleep(0.5)
        res = daemon.docker("logs", "-f", "--tail", "2", name, timeout=20)
        assert res.stdout.decode().splitlines() == ["line4", "line5", "last"]
    finally:
        daemon.docker("rm", "-f", name)
