"""Docker's default seccomp profile is the default, as on Docker Engine: no
user namespace, mount namespace or mount inside a container unless
CAP_SYS_ADMIN is added or seccomp is unconfined; clone3 and syscalls newer
than the profile answer ENOSYS; the daemon option picks another profile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.engine.host.seccomp import CONTAINERS_COMMON_PROFILE, DOCKER_PROFILE
from tests.integration.conftest import Daemon, start_daemon, stop_daemon

pytestmark = pytest.mark.skipif(not DOCKER_PROFILE.exists(),
                                reason="Docker's profile is not fetched (make setup)")

EPERM = "Operation not permitted"
BLOCKED = {
    "unshare -U": ["unshare", "-U", "true"],
    "unshare -m": ["unshare", "-m", "true"],
    "mount": ["sh", "-c", "mkdir -p /mnt && mount -t tmpfs x /mnt"],
}
PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *f(void *a) { return a; }
static void show(const char *name, long r) { printf("%s %ld %s\n", name, r, r ? strerror(errno) : "ok"); }
int main(void) {
  errno = 0; show("clone3", syscall(435, NULL, 0));
  errno = 0; show("cachestat", syscall(451, -1, NULL, NULL, 0));
  errno = 0; show("fchmodat2", syscall(452, -1, "", 0, 0));
  pthread_t t;
  printf("pthread_create %d\n", pthread_create(&t, NULL, f, NULL));
  return 0;
}
"""


def run(d: Daemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    return d.docker("run", "--rm", *args)


@pytest.mark.parametrize("what", sorted(BLOCKED))
@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_blocked_by_default_and_allowed_with_sys_admin(daemon: Daemon, what: str,
                                                      runtime: str):
    cmd = BLOCKED[what]
    res = run(daemon, "--runtime", runtime, "busybox", *cmd)
    assert res.returncode != 0
    err = res.stderr.decode()
    assert EPERM in err or "permission denied" in err, err
    # Docker's profile allows these with CAP_SYS_ADMIN
    res = run(daemon, "--runtime", runtime, "--cap-add", "SYS_ADMIN", "busybox", *cmd)
    assert res.returncode == 0, res.stderr.decode()


def test_unconfined_lifts_the_filter(daemon: Daemon):
    res = run(daemon, "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true")
    assert res.returncode == 0, res.stderr.decode()
    # the mount namespace still needs the capability: that refusal is the kernel's
    res = run(daemon, "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-m", "true")
    assert res.returncode != 0 and EPERM in res.stderr.decode()


def test_info_shows_the_builtin_profile(daemon: Daemon):
    info = json.loads(daemon.out("info", "--format", "{{json .SecurityOptions}}"))
    assert "name=seccomp,profile=builtin" in info
    text = daemon.out("info")
    assert "seccomp\n   Profile: builtin" in text
    assert "not using the default seccomp profile" not in text


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (make setup-test installs it)")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(PROBE_C)
    res = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c"),
                          "-lpthread"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static probe: {res.stderr[-300:]}")
    return d / "probe"


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_clone3_and_newer_syscalls_answer_enosys(daemon: Daemon, probe: Path, runtime: str):
    cid = daemon.out("create", "--runtime", runtime, "busybox", "/probe").strip()
    try:
        daemon.out("cp", str(probe), f"{cid}:/probe")
        res = daemon.docker("start", "-a", cid)
        assert res.returncode == 0, res.stderr.decode()
        lines = dict(ln.split(" ", 1) for ln in res.stdout.decode().splitlines())
    finally:
        daemon.docker("rm", "-f", cid)
    for name in ("clone3", "cachestat", "fchmodat2"):
        assert lines[name] == "-1 Function not implemented", (name, lines)
    # glibc falls back from clone3 to clone: threads work
    assert lines["pthread_create"] == "0"


@pytest.fixture(scope="module")
def common_daemon() -> Iterator[Daemon]:
    if not CONTAINERS_COMMON_PROFILE.exists():
        pytest.skip("containers-common's profile is not installed")
    base = Path(tempfile.mkdtemp(prefix="dockyard-sc-", dir="/var/tmp"))
    d = start_daemon(base, ["--seccomp-profile", str(CONTAINERS_COMMON_PROFILE)])
    try:
        yield d
    finally:
        stop_daemon(d)


def test_containers_common_profile_stays_selectable(common_daemon: Daemon):
    d = common_daemon
    # the difference that matters: an unprivileged user namespace
    res = run(d, "busybox", "unshare", "-U", "true")
    assert res.returncode == 0, res.stderr.decode()
    info = json.loads(d.out("info", "--format", "{{json .SecurityOptions}}"))
    assert f"name=seccomp,profile={CONTAINERS_COMMON_PROFILE}" in info
    assert "WARNING: daemon is not using the default seccomp profile" in \
        d.docker("info").stderr.decode() + d.out("info")
    # seccomp=builtin still means Docker's own profile
    res = run(d, "--security-opt", "seccomp=builtin", "busybox", "unshare", "-U", "true")
    assert res.returncode != 0 and EPERM in res.stderr.decode()


def test_unconfined_daemon_option(tmp_path: Path):
    base = Path(tempfile.mkdtemp(prefix="dockyard-sc-", dir="/var/tmp"))
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"seccomp-profile": "unconfined"}))
    d = start_daemon(base, ["--config-file", str(cfg)])
    try:
        status = d.out("run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status")
        assert status.split() == ["Seccomp:", "0"]
        info = json.loads(d.out("info", "--format", "{{json .SecurityOptions}}"))
        assert "name=seccomp,profile=unconfined" in info
        # a container can still ask for Docker's profile
        res = run(d, "--security-opt", "seccomp=builtin", "busybox", "unshare", "-U", "true")
        assert res.returncode != 0 and EPERM in res.stderr.decode()
    finally:
        stop_daemon(d)


def test_a_profile_that_cannot_be_read_stops_the_start(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "daemon", "-H",
                          f"unix://{tmp_path}/s.sock", "--data-root", str(tmp_path / "data"),
                          "--exec-root", str(tmp_path / "exec"), "--seccomp-profile",
                          str(tmp_path / "missing.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert f"opening seccomp profile ({tmp_path}/missing.json) failed: No such file or " \
           "directory" in res.stderr
    assert not (tmp_path / "s.sock").exists()
