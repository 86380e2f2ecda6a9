"""Pure pieces of dockyard.runtime: no root, no runtime, no conmon."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from dockyard.errors import InvalidParameter
from dockyard.runtime import runtimes
from dockyard.runtime.attach import STDERR, STDOUT, decode_packet
from dockyard.runtime.commands import signal_name, start_error_exit_code
from dockyard.runtime.conmon import (
    ConmonSettings,
    ContainerIO,
    ContainerLayout,
    build_conmon_args,
)
from dockyard.runtime.exec import exec_layout
from dockyard.runtime.logs import (
    LogParseError,
    iter_log_entries,
    parse_k8s_log_line,
    parse_timestamp_ns,
)
from dockyard.runtime.pipes import parse_pipe_message
from dockyard.runtime.process import runtime_error_message
from dockyard.runtime.runtimes import OCIRuntime, RuntimeSet

# --- k8s-file log lines ----------------------------------------------------

TS = "2026-11-28T23:01:20.989985462+00:00"
TS_NS = 1795906880 * 1_000_000_000 + 989985462


def test_full_line_keeps_container_newline():
    e = parse_k8s_log_line(f"{TS} stdout F hello world\n".encode())
    assert (e.timestamp_ns, e.stream, e.partial, e.data) == (TS_NS, "stdout", False,
                                                            b"hello world\n")


def test_line_without_trailing_newline_is_still_full():
    assert parse_k8s_log_line(f"{TS} stderr F oops".encode()).data == b"oops\n"


def test_partial_line_drops_conmon_newline():
    e = parse_k8s_log_line(f"{TS} stdout P no newline\n".encode())
    assert e.partial and e.data == b"no newline"


def test_empty_lines():
    assert parse_k8s_log_line(f"{TS} stdout F \n".encode()).data == b"\n"
    assert parse_k8s_log_line(f"{TS} stdout F\n".encode()).data == b"\n"


def test_binary_and_spaces_preserved():
    raw = b"  two  spaces \x00\xff\r"
    e = parse_k8s_log_line(f"{TS} stdout F ".encode() + raw + b"\n")
    assert e.data == raw + b"\n"


def test_offsets_and_fractions():
    assert parse_timestamp_ns("2026-11-28T23:01:20.989985462Z") == TS_NS
    assert parse_timestamp_ns("2026-11-29T01:01:20.989985462+02:00") == TS_NS
    assert parse_timestamp_ns("2026-11-28T18:31:20.989985462-04:30") == TS_NS
    assert parse_timestamp_ns("2026-11-28T23:01:20.5+00:00") == 1795906880_500_000_000
    assert parse_timestamp_ns("2026-11-28T23:01:20+00:00") == 1795906880_000_000_000


@pytest.mark.parametrize("line", [
    b"", b"garbage", f"{TS} stdin F x".encode(), f"{TS} stdout X x".encode(),
    b"notatime stdout F x", b"2026-11-28T23:01:20.x+00:00 stdout F x",
])
def test_bad_lines(line):
    with pytest.raises(LogParseError):
        parse_k8s_log_line(line)


def test_iter_entries_reassembles_output_and_skips_unfinished_tail():
    blob = (f"{TS} stdout P abc\n{TS} stdout F def\n{TS} stderr F e\r\n"
            f"{TS} stdout F unfinished").encode()
    entries = iter_log_entries(blob)
    assert b"".join(e.data for e in entries if e.stream == "stdout") == b"abcdef\n"
    assert [e.data for e in entries if e.stream == "stderr"] == [b"e\r\n"]


# --- conmon argument building ---------------------------------------------

RT = OCIRuntime(name="runc", path="/usr/sbin/runc", root="/run/dy/runtime/runc")
CRUN = OCIRuntime(name="crun", path="/usr/bin/crun", root="/run/dy/runtime/crun",
                  create_path="/run/dy/crun-hybrid", args=("--debug",))
LAYOUT = ContainerLayout.in_bundle("/run/dy/c/abc", log_path="/var/lib/dy/c/abc/ctr.log",
                                   exit_dir="/run/dy/exits")


def _opt(argv, flag):
    return argv[argv.index(flag) + 1]


def test_create_args():
    argv = build_conmon_args(ConmonSettings(path="/usr/bin/conmon"), RT, "abc", LAYOUT,
                             ContainerIO(), name="web")
    assert argv[0] == "/usr/bin/conmon"
    assert _opt(argv, "--api-version") == "1"
    assert _opt(argv, "-c") == "abc" and _opt(argv, "-u") == "abc"
    assert _opt(argv, "-r") == "/usr/sbin/runc"
    assert _opt(argv, "-b") == "/run/dy/c/abc"
    assert _opt(argv, "-p") == "/run/dy/c/abc/pidfile"
    assert _opt(argv, "-n") == "web"
    assert _opt(argv, "--exit-dir") == "/run/dy/exits"
    assert _opt(argv, "--persist-dir") == "/run/dy/c/abc/persist"
    assert _opt(argv, "-l") == "k8s-file:/var/lib/dy/c/abc/ctr.log"
    assert _opt(argv, "--conmon-pidfile") == "/run/dy/c/abc/conmon.pid"
    assert "--full-attach" in argv
    for flag in ("-i", "-t", "--leave-stdin-open", "-e", "--exec-attach", "-s"):
        assert flag not in argv
    assert argv[-4:] == ["--runtime-arg=--root", "--runtime-arg=/run/dy/runtime/runc",
                         "--runtime-arg=--log-format=json",
                         "--runtime-arg=--log=/run/dy/c/abc/runtime.log"]


def test_stdio_flags_and_log_size():
    argv = build_conmon_args(ConmonSettings(path="conmon", log_size_max=1 << 20), RT, "abc",
                             LAYOUT, ContainerIO(stdin=True, tty=True, leave_stdin_open=True))
    assert {"-i", "-t", "--leave-stdin-open"} <= set(argv)
    assert _opt(argv, "--log-size-max") == str(1 << 20)


def test_log_through_a_fifo_or_none():
    settings = ConmonSettings(path="conmon", log_size_max=1 << 20)
    argv = build_conmon_args(settings, RT, "abc", LAYOUT, ContainerIO(log="fifo"))
    # conmon's rotation would rename a regular file over the FIFO
    assert _opt(argv, "-l") == "k8s-file:/var/lib/dy/c/abc/ctr.log"
    assert "--log-size-max" not in argv and "--no-sync-log" in argv
    argv = build_conmon_args(settings, RT, "abc", LAYOUT, ContainerIO(log="none"))
    assert _opt(argv, "-l") == "none" and "--log-size-max" not in argv


def test_crun_uses_wrapper_for_create_and_keeps_extra_args():
    argv = build_conmon_args(ConmonSettings(), CRUN, "abc", LAYOUT, ContainerIO())
    assert _opt(argv, "-r") == "/run/dy/crun-hybrid"
    assert "--runtime-arg=--debug" in argv


def test_exec_args_use_session_layout_and_real_binary():
    layout = exec_layout("/run/dy/c/abc/exec/s1")
    argv = build_conmon_args(ConmonSettings(), CRUN, "abc", layout, ContainerIO(tty=True),
                             conmon_uuid="s1", exec_process_spec="/x/process.json",
                             exec_attach=True, runtime_path=CRUN.path)
    assert _opt(argv, "-c") == "abc" and _opt(argv, "-u") == "s1"
    assert _opt(argv, "-r") == "/usr/bin/crun"
    assert _opt(argv, "--exec-process-spec") == "/x/process.json"
    assert {"-e", "--exec-attach", "-t"} <= set(argv)
    assert _opt(argv, "--exit-dir") == "/run/dy/c/abc/exec/s1/exits"
    assert _opt(argv, "--persist-dir") == "/run/dy/c/abc/exec/s1"


def test_layout_paths():
    assert LAYOUT.attach_socket == "/run/dy/c/abc/attach"
    assert LAYOUT.ctl_fifo == "/run/dy/c/abc/ctl"
    assert LAYOUT.exit_file("abc") == "/run/dy/exits/abc"
    assert LAYOUT.oom_file == "/run/dy/c/abc/persist/oom"


# --- pipes, packets, errors -----------------------------------------------

def test_pipe_messages():
    assert parse_pipe_message(b'{"data": 1234}\n').data == 1234
    m = parse_pipe_message(b'{"data": -1, "message": "exec: \\"x\\": not found\\n"}\n')
    assert m.data == -1 and m.message == 'exec: "x": not found\n'


def test_attach_packets():
    assert decode_packet(b"\x02hi") .stream == STDOUT
    assert decode_packet(b"\x03err").data == b"err"
    assert decode_packet(b"\x03err").stream == STDERR
    assert decode_packet(b"") is None and decode_packet(b"\x09x") is None


def test_runtime_error_messages():
    runc_text = ('time="2026-11-28T23:41:28Z" level=error msg="runc create failed: unable to '
                 'start container process: exec: \\"nosuch\\": executable file not found in '
                 '$PATH"\n')
    assert runtime_error_message(runc_text) == (
        'runc create failed: unable to start container process: exec: "nosuch": '
        "executable file not found in $PATH")
    json_log = ('{"level":"info","msg":"x"}\n'
                '{"level":"error","msg":"boom","time":"t"}\n')
    assert runtime_error_message(json_log) == "boom"
    crun = "executable file `nosuch` not found in $PATH: No such file or directory\n"
    assert runtime_error_message(crun) == crun.strip()


@pytest.mark.parametrize("msg,code", [
    ('exec: "nosuch": executable file not found in $PATH', 127),
    ("executable file `nosuch` not found in $PATH: No such file or directory", 127),
    ('exec: "/etc": is a directory', 126),
    ('exec: "/etc/passwd": permission denied', 126),
    ("cgroups in hybrid mode not supported", None),
])
def test_start_error_exit_codes(msg, code):
    assert start_error_exit_code(msg) == code


def test_signal_names():
    assert signal_name(9) == "KILL"
    assert signal_name("15") == "TERM"
    assert signal_name("SIGUSR1") == "USR1"
    assert signal_name("hup") == "HUP"


# --- runtimes --------------------------------------------------------------

def test_version_parsing():
    assert runtimes.parse_version_output("runc version 1.1.5+ds1\ncommit: x\n") == "1.1.5+ds1"
    assert runtimes.parse_version_output("crun version 1.8.1\ncommit: f8a\n") == "1.8.1"
    assert runtimes.runtime_commit("crun version 1.8.1\ncommit: f8a\n") == "f8a"


def test_command_puts_global_args_first():
    assert CRUN.command("state", "abc") == ["/usr/bin/crun", "--debug", "--root",
                                            "/run/dy/runtime/crun", "state", "abc"]
    assert CRUN.create_binary == "/run/dy/crun-hybrid" and RT.create_binary == RT.path


def test_detect_runtimes_reads_daemon_json(tmp_path):
    fake = tmp_path / "my-runtime"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    found = runtimes.detect_runtimes(
        {"mine": {"path": str(fake), "runtimeArgs": ["--flag"]},
         "ghost": {"path": "/nonexistent/ghost"}},
        state_root="/run/dy/runtime")
    assert found["mine"].path == str(fake) and found["mine"].args == ("--flag",)
    assert found["mine"].root == "/run/dy/runtime/mine"
    assert "ghost" not in found


def test_runtime_set_lookup():
    rs = RuntimeSet(runtimes={"runc": RT}, default="runc")
    assert rs.get(None) is RT and rs.get("runc") is RT
    with pytest.raises(InvalidParameter):
        rs.get("nope")


def test_crun_wrapper_is_valid_shell(tmp_path):
    path = runtimes.write_crun_wrapper(str(tmp_path), "/usr/bin/crun")
    assert os.access(path, os.X_OK)
    with open(path) as f:
        text = f.read()
    assert "unshare -m" in text and "/sys/fs/cgroup/unified" in text
    assert subprocess.run(["sh", "-n", path], check=False).returncode == 0


def test_hybrid_detection_on_fake_tree(tmp_path):
    (tmp_path / "memory").mkdir()
    assert not runtimes.is_hybrid_cgroup_host(str(tmp_path))   # no unified mount
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert not runtimes.is_hybrid_cgroup_host(str(tmp_path))   # pure v2
