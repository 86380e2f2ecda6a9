"""Integration tests: a real dockyard daemon on a private socket and data root,
driven by the real docker CLI and docker-py.  Needs root and the host's
runtimes (make setup installs them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.engine.networks import store as engine_networks
from dockyard.util.fstree import remove_quietly

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root")
        for item in items:
            item.add_marker(skip)


@dataclass
class Daemon:
    socket: str
    data_root: Path
    exec_root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = str(self.data_root.parent / "docker-config")
        return env

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Run the real docker CLI against this daemon."""
        res = subprocess.run([DOCKER, *args], env=self.env(), input=input,
                             capture_output=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({res.returncode}): "
                                 f"{res.stderr.decode()}")
        return res

    def out(self, *args: str, **kw: object) -> str:
        return self.docker(*args, check=True, **kw).stdout.decode()  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def remove_test_dir(p: Path) -> None:
    """rm -rf for what a test daemon left, however deep (shutil.rmtree
    recurses, and some tests leave trees thousands of levels deep)."""
    remove_quietly(p, "test directory", unmount=True)


# every base and exec root a test daemon used, for the end-of-session sweep
_USED_DIRS: list[Path] = []
# the chain prefixes and default bridges of the daemons this suite started:
# engines other suites run on the host at the same time are not ours to judge
_OUR_TAGS: set[str] = set()
# what a stopped test daemon left of its removed containers (see leftovers())
_LEAKS: list[str] = []
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "dockyard"


def container_cgroups() -> set[Path]:
    """Container cgroups under the engine's parent with no process in them."""
    found = set()
    for cg in list(CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}/*")) + \
            list(CGROUP_ROOT.glob(f"{CGROUP_PARENT}/*")):
        if not cg.is_dir() or len(cg.name) != 64:
            continue
        try:
            if not (cg / "cgroup.procs").read_text().strip():
                found.add(cg)
        except OSError:
            continue
    return found


def leftovers(d: Daemon) -> list[str]:
    """What is left on the host of a daemon's containers once they are all
    removed: mounts under its roots, conmon processes, network namespaces,
    bundles and runtime state."""
    out = []
    roots = (str(d.data_root), str(d.exec_root))
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith(roots) and not target.endswith("/netns"):
            out.append(f"mount {target}")
    procs = subprocess.run(["pgrep", "-af", "conmon"], capture_output=True, text=True).stdout
    out += [f"process {p}" for p in procs.splitlines() if str(d.exec_root) in p]
    for sub in ("netns", "bundles"):
        base = d.exec_root / sub
        if base.is_dir():
            out += [f"{sub}/{p.name}" for p in base.iterdir()]
    runtime = d.exec_root / "runtime"
    if runtime.is_dir():
        out += [f"runtime state {p}" for rt in runtime.iterdir() if rt.is_dir()
                for p in rt.iterdir() if len(p.name) == 64]
    return out


def ours(obj: str) -> bool:
    """A default bridge or chain of one of this suite's daemons, or a veth
    no other engine's bridge holds (a live engine's veths always have their
    bridge).  A user network's bridge is named after the network alone: one
    left behind is seen by the chains that name it."""
    kind, name = obj.split(" ", 1)
    if kind == "chain" or not name.startswith("veth"):
        return any(name.startswith(t) for t in _OUR_TAGS)
    master = subprocess.run(["ip", "-o", "link", "show", name], capture_output=True,
                            text=True).stdout.partition(" master ")[2].split(" ")[0]
    return not master or any(master.startswith(t) for t in _OUR_TAGS)


def host_network_objects() -> set[str]:
    """Bridges, veths and firewall chains an engine makes on the host."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = {f"link {line.split(':')[1].strip().split('@')[0]}"
             for line in links.splitlines()
             if line.split(":")[1].strip().startswith(("dy", "veth"))}
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found |= {f"chain {line.split()[0][1:]}" for line in rules.splitlines()
              if line.startswith(":DOCKYARD")}
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After the whole suite: no test daemon left mounts, monitors, network
    namespaces or runtime state of removed containers, and no container
    cgroup, bridge, veth or firewall chain was left behind."""
    cgroups_before = container_cgroups()
    network_before = host_network_objects()
    yield
    leaked = list(_LEAKS)
    new_cgroups = container_cgroups() - cgroups_before
    if new_cgroups:
        # an engine run beside this one (another checkout's suite) may be
        # between a container's exit and its cleanup: only what stays counts
        time.sleep(2)
        new_cgroups &= container_cgroups()
    leaked += [f"cgroup {cg}" for cg in sorted(new_cgroups)]
    new_net = {o for o in host_network_objects() - network_before if ours(o)}
    if new_net:
        # a veth another engine is making has no bridge for a moment
        time.sleep(2)
        new_net &= {o for o in host_network_objects() if ours(o)}
    leaked += sorted(new_net)
    assert not leaked, "left behind by the suite's containers:\n" + "\n".join(leaked)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove what test daemons left behind (a daemon that failed to start,
    a test that died half way), so a run leaves the host as it found it."""
    for p in _USED_DIRS:
        if not p.exists():
            continue
        busy = subprocess.run(["pgrep", "-f", str(p)], capture_output=True).stdout.strip()
        if busy:
            continue
        mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                                text=True).stdout.split()
        for m in sorted((m for m in mounts if m.startswith(str(p))), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        remove_test_dir(p)


# A port on 127.0.0.1 held bound but never listening: connections to it are
# refused.  Test daemons send registry traffic through it as their proxy, so
# a pull or push that would leave the machine fails at once instead
# (loopback and the registry tests' namespaces on 198.18.0.0/15 are reached
# directly, as proxies never apply to loopback and NO_PROXY names the rest).
_NO_EXIT = socket.socket()
_NO_EXIT.bind(("127.0.0.1", 0))
NO_EXIT_PROXY = f"http://127.0.0.1:{_NO_EXIT.getsockname()[1]}"
DAEMON_ENV = {"HTTP_PROXY": NO_EXIT_PROXY, "HTTPS_PROXY": NO_EXIT_PROXY,
              "NO_PROXY": "198.18.0.0/15"}


def start_daemon(base: Path, extra_args: list[str] | None = None) -> Daemon:
    # the same base gets the same exec root, as a restarted daemon would
    tag = base.name.rsplit("-", 1)[-1][:12]
    sock = str(base / "dockyard.sock")
    data = base / "data"
    execr = Path(f"/run/dockyard-test-{tag}")
    log_path = base / "daemon.log"
    _USED_DIRS.extend([base, execr])
    names = engine_networks.HostNames.for_data_root(data)
    _OUR_TAGS.update([names.chain_prefix + "-", names.default_bridge])
    if os.path.exists(sock):
        os.unlink(sock)  # left by a daemon that was killed
    logf = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(data), "--exec-root", str(execr), "--debug", *(extra_args or [])],
        stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True,
        env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | DAEMON_ENV)
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(sock):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited: {log_path.read_text()}")
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"daemon did not start: {log_path.read_text()}")
    return Daemon(sock, data, execr, proc, log_path)


def remove_host_networking(d: Daemon) -> None:
    """A test daemon's bridges, firewall chains and name server: the host is
    shared, and a test daemon's data root does not outlive its test."""
    asyncio.run(engine_networks.remove_host_networking(d.data_root, d.exec_root))


def stop_daemon(d: Daemon, cleanup: bool = True) -> None:
    """Stop the daemon; with cleanup, also remove its containers (they
    outlive the daemon by design), its exec root and its base directory."""
    if d.proc.poll() is None:
        if cleanup:
            res = d.docker("ps", "-aq", timeout=30)
            ids = res.stdout.decode().split()
            if ids:
                d.docker("rm", "-f", *ids, timeout=120)
            _LEAKS.extend(f"{d.exec_root}: {what}" for what in leftovers(d))
        d.proc.terminate()
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
    if cleanup:
        remove_host_networking(d)
        remove_test_dir(d.exec_root)
        remove_test_dir(d.data_root.parent)


@contextlib.contextmanager
def private_daemon() -> Iterator[Daemon]:
    """A daemon of its own (data root, socket, networks), stopped and
    cleaned up afterwards."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        yield d
    finally:
        stop_daemon(d)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    with private_daemon() as d:
        yield d


@pytest.fixture(scope="session")
def client(daemon: Daemon):  # type: ignore[no-untyped-def]
    import docker

    c = docker.DockerClient(base_url=daemon.host, version="auto", timeout=60)
    yield c
    c.close()


@pytest.fixture
def name() -> str:
    """A unique container name for one test."""
    return f"t-{uuid.uuid4().hex[:10]}"
