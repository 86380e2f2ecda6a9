"""Exec decisions without root: request validation, error texts and exit
codes, the merged OCI process, inspect shape, output recovery, record GC."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.events import EventBus
from dockyard.engine.exec.process import (
    ExecConfig,
    Seen,
    build_exec_process,
    exec_start_error,
    missed_output,
    missing_prefix,
    parse_create_request,
    parse_start_request,
)
from dockyard.engine.exec.service import ExecService
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.oci.users import ResolvedUser


def _exec(**kw: object) -> ExecConfig:
    base: dict = {"id": "e" * 64, "container_id": "c" * 64, "entrypoint": "sh",
                  "args": ["-c", "x"], "tty": False, "privileged": False, "user": "",
                  "working_dir": "", "env": ["A=1"], "open_stdin": False, "open_stdout": True,
                  "open_stderr": True, "detach_keys": b"", "console_size": None}
    base.update(kw)
    return ExecConfig(**base)


@pytest.mark.parametrize("body", [None, {}, {"Cmd": []}, {"Cmd": None}])
def test_no_command(body):
    with pytest.raises(InvalidParameter, match="^No exec command specified$"):
        parse_create_request(body)


def test_bad_cmd_type():
    with pytest.raises(InvalidParameter):
        parse_create_request({"Cmd": "ls"})


def test_create_body_field_names_in_any_case():
    # docker-py sends its config file's detach keys as `detachKeys`
    req = parse_create_request({"cmd": ["cat"], "detachKeys": "ctrl-x", "tty": True,
                                "attachStdin": True, "Container": "ignored"})
    assert req == {"Cmd": ["cat"], "DetachKeys": "ctrl-x", "Tty": True, "AttachStdin": True}


@pytest.mark.parametrize(("body", "msg"), [
    ({"Cmd": ["echo", "a\0b"]}, 'invalid Cmd: "a\\x00b" contains a NUL byte'),
    ({"Cmd": ["sh"], "Env": ["A=\0"]}, 'invalid Env: "A=\\x00" contains a NUL byte'),
    ({"Cmd": ["sh"], "WorkingDir": "/\0"}, 'invalid WorkingDir: "/\\x00" contains a NUL byte'),
    ({"Cmd": ["sh"], "User": "0\0"}, 'invalid User: "0\\x00" contains a NUL byte'),
    ({"Cmd": ["sh"], "ConsoleSize": [-1, 80]},
     ("invalid JSON: json: cannot unmarshal number -1 into Go struct field "
     "ExecOptions.ConsoleSize of type uint")),
])
def test_create_body_bad_strings_are_400(body, msg):
    with pytest.raises(InvalidParameter) as e:
        parse_create_request(body)
    assert e.value.message == msg


def test_start_body():
    opts = parse_start_request({"detach": True, "tty": True, "consoleSize": [30, 100]},
                               (1, 51))
    assert (opts.detach, opts.tty, opts.console_size) == (True, True, [30, 100])
    # the console size counts with a tty, from API 1.42
    assert parse_start_request({"Tty": False, "ConsoleSize": [30, 100]}, (1, 51)) \
        .console_size is None
    assert parse_start_request({"Tty": True, "ConsoleSize": [30, 100]}, (1, 41)) \
        .console_size is None
    assert parse_start_request(None, (1, 51)) == parse_start_request({}, (1, 51))
    with pytest.raises(InvalidParameter, match="ExecStartOptions.Detach of type bool"):
        parse_start_request({"Detach": "yes"}, (1, 51))


def test_start_error_not_found_crun():
    text, code = exec_start_error(
        "executable file `nosuch` not found in $PATH: No such file or directory")
    assert text == ('OCI runtime exec failed: exec failed: unable to start container process: '
                    'exec: "nosuch": executable file not found in $PATH: unknown')
    assert code == 127


def test_start_error_runc_text_kept():
    text, code = exec_start_error('exec failed: unable to start container process: exec: '
                                  '"x": executable file not found in $PATH')
    assert text.count("unable to start container process") == 1 and code == 127


@pytest.mark.parametrize("msg,code", [
    ("open executable: Permission denied", 126),
    ("exec: /etc: is a directory", 126),
    ("something else went wrong", 128),
])
def test_start_error_codes(msg, code):
    assert exec_start_error(msg)[1] == code


def test_is_a_directory_gets_permission_denied_suffix():
    # dockerd appends it so the CLI's "permission denied" check gives 126.
    assert exec_start_error("is a directory")[0].endswith(": permission denied")


def test_process_merge():
    base = {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "1"],
            "env": ["PATH=/bin"], "cwd": "/srv", "consoleSize": {"height": 1, "width": 1},
            "capabilities": {"bounding": ["CAP_CHOWN"]}, "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10}]}
    ec = _exec(tty=True, working_dir="/tmp", env=["PATH=/bin", "TERM=xterm"])
    p = build_exec_process(base, ec, user=ResolvedUser(65534, 65534, (65534, 10)),
                           all_caps=["CAP_CHOWN", "CAP_SYS_ADMIN"], console_size=[24, 80])
    assert p["args"] == ["sh", "-c", "x"]
    assert p["cwd"] == "/tmp" and p["terminal"] is True
    assert p["consoleSize"] == {"height": 24, "width": 80}
    assert p["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534, 10]}
    assert p["env"] == ["PATH=/bin", "TERM=xterm"]
    # The container's own settings stay: capabilities, rlimits, no_new_privs.
    assert p["capabilities"] == {"bounding": ["CAP_CHOWN"]}
    assert p["noNewPrivileges"] is True and p["rlimits"] == base["rlimits"]
    assert base["args"] == ["sleep", "1"]   # not mutated


def test_process_privileged_and_defaults():
    p = build_exec_process({"cwd": "/x", "consoleSize": {"height": 1, "width": 1}},
                           _exec(privileged=True), user=None, all_caps=["CAP_A", "CAP_B"],
                           console_size=[5, 5])
    caps = ["CAP_A", "CAP_B"]
    assert p["capabilities"] == {"bounding": caps, "effective": caps, "permitted": caps}
    assert p["cwd"] == "/"           # no WorkingDir anywhere: dockerd uses /
    assert "consoleSize" not in p    # no tty, no console
    assert "user" not in p


def test_inspect_shape_and_command():
    ec = _exec(entrypoint="true", args=[], detach_keys=b"\x01", user="nobody")
    assert ec.command == "true "     # dockerd's trailing space
    j = ec.to_json()
    assert j["ExitCode"] is None and j["Pid"] == 0 and j["Running"] is False
    assert j["ProcessConfig"] == {"tty": False, "entrypoint": "true", "arguments": [],
                                  "privileged": False, "user": "nobody"}
    assert j["DetachKeys"] == "AQ=="
    assert "user" not in _exec().to_json()["ProcessConfig"]


def test_missing_prefix():
    seen = Seen()
    assert missing_prefix(b"abc", seen) == b"abc"
    seen.add(b"c")
    assert missing_prefix(b"abc", seen) == b"ab"
    seen = Seen()
    seen.add(b"abc")
    assert missing_prefix(b"abc", seen) == b""
    seen = Seen()
    seen.add(b"zz")
    assert missing_prefix(b"abc", seen) == b""   # not a tail: a truncated log


def _k8s_log(path: Path, entries: list[tuple[str, bytes]]) -> None:
    """A conmon k8s-file log: each piece one partial ("P") line."""
    with open(path, "wb") as f:
        f.writelines(b"2026-12-06T07:00:00.000000000+00:00 " + stream.encode() + b" P "
                    + data + b"\n" for stream, data in entries)


def test_missed_output_reads_a_large_log_in_blocks(tmp_path, monkeypatch):
    from dockyard.engine.exec import process
    monkeypatch.setattr(process, "LOG_BLOCK", 4096)       # many blocks
    pieces = [(("stderr" if i % 7 == 0 else "stdout"), b"%05d" % i * 40) for i in range(2000)]
    log = tmp_path / "exec.log"
    _k8s_log(log, pieces)
    out = b"".join(d for s, d in pieces if s == "stdout")
    err = b"".join(d for s, d in pieces if s == "stderr")
    # the socket delivered all but the first 1000 stdout bytes and 200 stderr bytes
    seen = {1: Seen(), 2: Seen()}
    seen[1].add(out[1000:])
    seen[2].add(err[200:])
    assert missed_output(str(log), seen) == [(1, out[:1000]), (2, err[:200])]
    # everything delivered: nothing to add
    seen = {1: Seen(), 2: Seen()}
    seen[1].add(out)
    seen[2].add(err)
    assert missed_output(str(log), seen) == []
    # what was delivered is not the log's tail (a truncated log): nothing
    seen = {1: Seen(), 2: Seen()}
    seen[1].add(b"x" * 10)
    assert missed_output(str(log), seen) == [(2, err)]
    assert missed_output(str(tmp_path / "gone.log"), seen) == []


def _manager(*containers: Container) -> ExecService:
    events = EventBus()
    store = ContainerStore(Path("/nonexistent"), Path("/nonexistent"), events)
    for c in containers:
        store.add(c)
    host = SimpleNamespace(exec_root=Path("/nonexistent"))
    return ExecService(store, SimpleNamespace(), host, events)  # type: ignore[arg-type]


def _container(status: str = "running") -> Container:
    c = Container(id="c" * 64, name="web", created=0, image_ref="busybox", image_id="x",
                  config={}, host_config={})
    c.state.status = status
    c.state.started_at = 5
    return c


def test_lookup_and_state_checks():
    c = _container()
    m = _manager(c)
    ec = _exec(container_started_at=5)
    m.by_id[ec.id] = ec
    c.exec_ids.append(ec.id)
    assert m.get_startable(ec.id) is ec
    c.state.status = "paused"
    with pytest.raises(Conflict, match="is paused, unpause the container before exec"):
        m.get_startable(ec.id)
    with pytest.raises(NotFound, match="^No such exec instance: nope$"):
        m.inspect("nope")


def test_never_started_exec_goes_with_the_run():
    c = _container()
    m = _manager(c)
    ec = _exec(container_started_at=5)
    m.by_id[ec.id] = ec
    c.exec_ids.append(ec.id)
    c.state.status = "exited"
    with pytest.raises(NotFound):
        m.inspect(ec.id)
    assert ec.id not in m.by_id and c.exec_ids == []


def test_finished_exec_survives_stop_but_not_removal():
    c = _container()
    m = _manager(c)
    ec = _exec(container_started_at=5, exit_code=3)
    m.by_id[ec.id] = ec
    c.state.status = "exited"
    assert m.inspect(ec.id)["ExitCode"] == 3
    m.store.discard(c)
    with pytest.raises(NotFound):
        m.inspect(ec.id)


def test_gc_two_ticks():
    c = _container()
    m = _manager(c)
    live = _exec(id="1" * 64, container_started_at=5)
    done = _exec(id="2" * 64, container_started_at=5, exit_code=0)
    m.by_id = {live.id: live, done.id: done}
    c.exec_ids.append(live.id)
    assert m.gc_once() == 0 and done.can_remove and not live.can_remove
    assert m.gc_once() == 1 and list(m.by_id) == [live.id]


def test_claim_twice():
    c = _container()
    m = _manager(c)
    ec = _exec(container_started_at=5)
    m.by_id[ec.id] = ec
    m._claim(ec)
    with pytest.raises(Conflict, match="is already running"):
        m._claim(ec)
    ec.running, ec.exit_code = False, 0
    with pytest.raises(Conflict, match="has already run"):
        m._claim(ec)


def test_create_rejects_stopped_container():
    c = _container("exited")
    m = _manager(c)
    with pytest.raises(Conflict, match=f"^container {c.id} is not running$"):
        asyncio.run(m.create("web", {"Cmd": ["true"]}, (1, 51)))
    c.state.status = "restarting"
    with pytest.raises(Conflict, match="is restarting, wait until the container is running"):
        asyncio.run(m.create("web", {"Cmd": ["true"]}, (1, 51)))


@pytest.mark.parametrize("runtime_text, argv0, text, code", [
    ("executable file `/nonexistent` not found in $PATH: No such file or directory",
     "/nonexistent", 'exec: "/nonexistent": stat /nonexistent: no such file or directory', 127),
    ("executable file `./x` not found in $PATH", "./x",
     'exec: "./x": stat ./x: no such file or directory', 127),
    ("open executable: Permission denied", "/etc/passwd",
     'exec: "/etc/passwd": permission denied', 126),
    ("open executable: Operation not permitted", "/etc", 'exec: "/etc": permission denied',
     126),
    # a bare name runc's PATH search skips when it cannot be run
    ("open executable: Permission denied", "noexec",
     'exec: "noexec": executable file not found in $PATH', 127),
    ("chdir `/nonexist`: No such file or directory", "true",
     'chdir to cwd ("/nonexist") set in config.json failed: no such file or directory', 126),
    # runc's own words come through as they are
    ('chdir to cwd ("/w") set in config.json failed: no such file or directory', "true",
     'chdir to cwd ("/w") set in config.json failed: no such file or directory', 126),
])
def test_start_errors_in_runc_words_with_dockers_codes(runtime_text, argv0, text, code):
    got, got_code = exec_start_error(runtime_text, argv0)
    assert got == ("OCI runtime exec failed: exec failed: unable to start container "
                   f"process: {text}: unknown")
    assert got_code == code


def test_a_working_directory_that_is_a_file_gets_dockers_hint():
    text, code = exec_start_error("chdir `/etc/passwd`: Not a directory", "true")
    assert text.endswith("set in config.json failed: not a directory: unknown: Are you "
                         "trying to mount a directory onto a file (or vice-versa)? Check if "
                         "the specified host path exists and is the expected type")
    assert code == 126
