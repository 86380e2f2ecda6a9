"""Volumes across `kill -9` of the daemon and its restart, and `docker system
df` sizes checked against the files themselves."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
import time
from pathlib import Path

from tests.integration.conftest import start_daemon, stop_daemon


def _mounted(path: str) -> bool:
    return any(line.split()[4] == path for line in open("/proc/self/mountinfo"))


def test_mounts_survive_kill_dash_nine_and_restart(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    base.chmod(0o711)
    d = start_daemon(base)
    host = tmp_path / "bind"
    host.mkdir()
    try:
        d.out("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
              "--opt", "o=size=4m", "scratch")
        d.out("volume", "create", "named")
        d.out("run", "-d", "--name", "r1", "-v", "scratch:/t", "-v", "named:/n",
              "-v", f"{host}:/h", "-v", "/anon", "busybox", "sh", "-c",
              "head -c 1000000 /dev/urandom > /t/f; cp /t/f /n/f; cp /t/f /h/f; "
              "cp /t/f /anon/f; sha256sum /t/f | cut -d' ' -f1 > /n/sum; sleep 300")
        d.out("run", "-d", "--name", "e1", "-v", "scratch:/t", "busybox", "sh", "-c", "sleep 2")
        for _ in range(100):
            if (host / "f").exists() and d.docker("exec", "r1", "test", "-s", "/n/sum"
                                                  ).returncode == 0:
                break
            time.sleep(0.1)
        want = d.out("exec", "r1", "cat", "/n/sum").strip()
        tmpfs_dir = d.out("volume", "inspect", "-f", "{{.Mountpoint}}", "scratch").strip()
        assert _mounted(tmpfs_dir)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        time.sleep(3)                       # e1 ends while the daemon is down
        d = start_daemon(base)
        out = d.out("exec", "r1", "sh", "-c",
                    "for f in /t/f /n/f /h/f /anon/f; do sha256sum $f | cut -d' ' -f1; done")
        assert out.split() == [want] * 4
        assert hashlib.sha256((host / "f").read_bytes()).hexdigest() == want
        assert d.out("inspect", "-f", "{{.State.Status}}", "e1").strip() == "exited"
        assert _mounted(tmpfs_dir)          # r1 still uses it
        assert set(d.out("volume", "ls", "-q").split()) >= {"scratch", "named"}
        res = d.docker("volume", "rm", "named")
        assert b"volume is in use" in res.stderr
        d.out("rm", "-f", "r1", "e1")
        assert not _mounted(tmpfs_dir)      # the last user is gone: unmounted
        # a volume directory a crash left without its record goes at the next start
        half = d.data_root / "volumes" / "halfmade"
        (half / "_data").mkdir(parents=True)
        stop_daemon(d, cleanup=False)
        d = start_daemon(base)
        assert not half.exists()
        assert "named" in d.out("volume", "ls", "-q").split()
        assert d.out("run", "--rm", "-v", "named:/n", "busybox", "cat", "/n/sum").strip() == want
    finally:
        stop_daemon(d)


def _file_bytes(root: Path) -> int:
    """The bytes of the files below root, each inode once (moby's size)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def test_system_df(daemon, client, vol, name):
    v = vol()
    daemon.out("volume", "create", v)
    daemon.out("run", "--name", name, "-v", f"{v}:/d", "busybox", "sh", "-c",
               "head -c 1234567 /dev/urandom > /d/a; mkdir /d/s; head -c 4321 /dev/urandom "
               "> /d/s/b; ln /d/a /d/hard; head -c 7777 /dev/urandom > /root-file")
    try:
        df = client.api.df()
        vols = {x["Name"]: x for x in df["Volumes"]}
        mp = Path(vols[v]["Mountpoint"])
        assert vols[v]["UsageData"] == {"Size": _file_bytes(mp), "RefCount": 1}
        assert _file_bytes(mp) == 1234567 + 4321
        ctr = next(c for c in df["Containers"] if c["Names"] == ["/" + name])
        upper = daemon.data_root / "containers" / ctr["Id"] / "upper"
        assert ctr["SizeRw"] == _file_bytes(upper) >= 7777
        assert isinstance(df["BuildCache"], list)
        busybox = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
        assert busybox["Containers"] >= 1 and busybox["Size"] > 0
        assert df["LayersSize"] >= busybox["Size"]
        # the CLI's tables
        table = daemon.out("system", "df", "-v")
        assert [line.split() for line in table.splitlines()
                if line.startswith(v + " ")] == [[v, "1", "1.239MB"]]
        assert "Local Volumes" in daemon.out("system", "df")
    finally:
        daemon.out("rm", name)
