"""Networking across daemon restarts, and beside a Docker Engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import DOCKER, start_daemon, stop_daemon
from tests.integration.network.refdocker import forward_policy, remove_docker_networking

SERVE = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 80 -h /www"
# a plain HTTP request with nc (busybox wget can crash on some answers)
_HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}"


def _get(url: str, timeout: float = 10) -> bytes:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_kill_dash_nine_keeps_networking_and_ports():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    port = _free_port()
    try:
        d.out("network", "create", "app")
        d.out("run", "-d", "--name", "db", "--network", "app", "busybox", "sh", "-c",
              SERVE.format(text="db"))
        d.out("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh",
              "-c", SERVE.format(text="web"))
        assert _get(f"http://127.0.0.1:{port}/") == b"web\n"
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        assert _get(f"http://127.0.0.1:{port}/") == b"web\n"   # served while we are away
        d = start_daemon(base)
        assert _get(f"http://127.0.0.1:{port}/") == b"web\n"
        out = d.out("run", "--rm", "--network", "app", "busybox", "wget", "-qO-", "http://db/")
        assert out == "db\n"
        # the restarted daemon knows the address and the port are taken
        ip = json.loads(d.out("inspect", "db"))[0]["NetworkSettings"]["Networks"]["app"]
        other = d.out("run", "-d", "--network", "app", "busybox", "sleep", "60").strip()
        other_ip = json.loads(d.out("inspect", other))[0]["NetworkSettings"]["Networks"]["app"]
        assert other_ip["IPAddress"] != ip["IPAddress"]
        res = d.docker("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert "port is already allocated" in res.stderr.decode()
        # stopping gives the port back; starting takes it again
        d.out("stop", "-t", "1", "web")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        d.out("start", "web")
        assert _get(f"http://127.0.0.1:{port}/") == b"web\n"
    finally:
        stop_daemon(d)


@pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd (docker.io) not installed")
def test_beside_a_docker_engine_with_its_own_networking(daemon, name, tmp_path):
    """dockerd sets FORWARD's policy to DROP and wires docker0; both engines'
    containers keep reaching each other's published ports and the outside
    of their own bridges."""
    sock = tmp_path / "docker.sock"
    policy = forward_policy()
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", str(tmp_path / "data"),
         "--exec-root", "/run/dockyard-test-refnet", "--pidfile", str(tmp_path / "pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ref = [DOCKER, "-H", f"unix://{sock}"]
    port_ours, port_theirs = _free_port(), _free_port()
    try:
        deadline = time.time() + 60
        while subprocess.run([*ref, "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.time() > deadline:
                pytest.skip("dockerd did not start")
            time.sleep(0.3)
        tar = tmp_path / "busybox.tar"
        daemon.out("save", "-o", str(tar), "busybox")
        subprocess.run([*ref, "load", "-i", str(tar)], check=True, capture_output=True)
        subprocess.run([*ref, "run", "-d", "--name", "theirs", "-p",
                        f"{port_theirs}:80", "busybox", "sh", "-c",
                        SERVE.format(text="theirs")], check=True, capture_output=True)
        daemon.out("run", "-d", "--name", name, "-p", f"127.0.0.1:{port_ours}:80", "busybox",
                   "sh", "-c", SERVE.format(text="ours"))
        assert _get(f"http://127.0.0.1:{port_ours}/") == b"ours\n"
        assert _get(f"http://127.0.0.1:{port_theirs}/") == b"theirs\n"
        # our container reaches theirs through the host, and the other way round
        host_ip = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                                 capture_output=True, text=True).stdout.split()[3].split("/")[0]
        got = daemon.out("run", "--rm", "busybox", "sh", "-c", _HTTP_GET.format(
            host=host_ip, port=port_theirs))
        assert got.endswith("theirs\n"), got
        # and their container reaches ours the same way
        ours_any = _free_port()
        daemon.out("run", "-d", "--name", f"{name}-any", "-p", f"{ours_any}:80", "busybox",
                   "sh", "-c", SERVE.format(text="ours"))
        got = subprocess.run([*ref, "run", "--rm", "busybox", "sh", "-c", _HTTP_GET.format(
            host=host_ip, port=ours_any)], capture_output=True, text=True)
        assert got.stdout.endswith("ours\n"), got.stderr
    finally:
        daemon.docker("rm", "-f", name, f"{name}-any")
        subprocess.run([*ref, "rm", "-f", "theirs"], capture_output=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["pkill", "-f", "/run/dockyard-test-refnet"], capture_output=True)
        remove_docker_networking(policy)
        shutil.rmtree("/run/dockyard-test-refnet", ignore_errors=True)


def _host_traces(prefix: str, bridges: list[str]) -> list[str]:
    """What of one engine the host's network state still shows."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [b for b in bridges if f": {b}:" in links or f": {b}@" in links]
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                               text=True).stdout
        found += [line for line in rules.splitlines() if prefix + "-" in line]
    return found


def _app_network(d) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Network "app" on a fresh engine: its chains' prefix, and the bridges
    (the default one's and app's) it may make."""
    from dockyard.engine.networks.store import HostNames
    names = HostNames.for_data_root(d.data_root)
    d.out("network", "create", "app")
    net_id = json.loads(d.out("network", "inspect", "app"))[0]["Id"]
    return names.chain_prefix, [names.default_bridge, f"dy-{net_id[:12]}"]


def test_nothing_of_ours_is_left_after_rm_and_prune():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        chain_prefix, bridges = _app_network(d)
        # a network has its bridge, as Docker's; no rules while nothing is attached
        assert _host_traces(chain_prefix, bridges) == [bridges[1]]
        d.out("run", "-d", "--name", "db", "--network", "app", "busybox", "sleep", "600")
        d.out("run", "-d", "--name", "web", "-p", "80", "busybox", "sleep", "600")
        veths_before = subprocess.run(["ip", "-o", "link"], capture_output=True,
                                      text=True).stdout.count("veth")
        assert len(_host_traces(chain_prefix, bridges)) > 2
        d.out("rm", "-f", "db", "web")
        assert d.out("network", "prune", "-f").strip().endswith("app")
        assert _host_traces(chain_prefix, bridges) == []
        veths = subprocess.run(["ip", "-o", "link"], capture_output=True,
                               text=True).stdout.count("veth")
        assert veths == veths_before - 2
        assert list((d.exec_root / "netns").iterdir()) == []
        assert not list((d.exec_root / "dns").glob("app"))
        # and the next container brings it all back
        out = d.out("run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
        assert " inet " in out
    finally:
        stop_daemon(d)


def test_cleanup_command_takes_out_a_stopped_engines_host_state():
    """`dockyard cleanup` after an engine stopped with a container still
    running (containers outlive the daemon): bridges, rules, the name
    server's files and every network namespace mount go."""
    import sys
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        chain_prefix, bridges = _app_network(d)
        cid = d.out("run", "-d", "--network", "app", "busybox", "sleep", "600").strip()
        pid = int(d.out("inspect", "-f", "{{.State.Pid}}", cid))
        d.proc.terminate()
        d.proc.wait(15)
        mounts = Path("/proc/mounts").read_text()
        assert f"{d.exec_root}/netns/{cid}" in mounts
        out = subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                              str(d.data_root), "--exec-root", str(d.exec_root)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"bridge {bridges[1]}" in out.stdout
        assert _host_traces(chain_prefix, bridges) == []
        assert str(d.exec_root) not in Path("/proc/mounts").read_text()
        # the engine coming back on that data root finds its container gone
        os.kill(pid, signal.SIGKILL)
        d = start_daemon(base)
        assert d.out("inspect", "-f", "{{.State.Status}}", cid).strip() == "exited"
    finally:
        stop_daemon(d)


def test_removing_the_last_user_network_leaves_nothing():
    """`docker network rm` of the last user-defined network, with nothing
    attached (a compose project's `down`), takes the engine's rules, bridges
    and name server off the host without a prune."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        chain_prefix, bridges = _app_network(d)
        d.out("network", "create", "other")
        d.out("run", "--rm", "--network", "app", "busybox", "true")
        d.out("network", "rm", "app")
        # another user network is still there: the engine's chains stay
        assert _host_traces(chain_prefix, bridges[:1]) != []
        d.out("network", "rm", "other")
        assert _host_traces(chain_prefix, bridges) == []
    finally:
        stop_daemon(d)
