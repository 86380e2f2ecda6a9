from __future__ import annotations

from cgroups_testutil import FIXTURES

from dockyard.cgroups.detect import detect_cgroups
from dockyard.cgroups.paths import (
    container_cgroup_dir,
    container_cgroup_dirs,
    locate_container_cgroup,
    parse_proc_cgroup,
    process_cgroup,
    read_process_cgroup,
)

ROOT = "/sys/fs/cgroup"


def _info(name: str, tmp_path, files: dict[str, str] | None = None):
    for rel, text in (files or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    text = (FIXTURES / "mountinfo" / name).read_text()
    return detect_cgroups(text, str(tmp_path))


def test_parse_proc_cgroup_hybrid_host_capture():
    paths = parse_proc_cgroup((FIXTURES / "proc" / "cgroup_hybrid").read_text())
    assert paths["memory"].startswith("/process_api/")
    assert paths["cpu"] == "/" and paths[""] == "/" and paths["name=systemd"] == "/"


def test_parse_proc_cgroup_comounted_and_v2():
    paths = parse_proc_cgroup((FIXTURES / "proc" / "cgroup_v1").read_text())
    assert paths["cpu"] == paths["cpuacct"] == "/dockyard/4f1c2d"
    assert paths["net_prio"] == "/dockyard/4f1c2d" and paths["rdma"] == "/"
    assert parse_proc_cgroup("0::/system.slice/x.service\n") == {"": "/system.slice/x.service"}
    assert parse_proc_cgroup("") == {}


def test_v1_dirs_one_per_controller(tmp_path):
    info = _info("v1_host", tmp_path)
    dirs = container_cgroup_dirs(info, "/dockyard/abc")
    assert dirs["memory"] == f"{tmp_path}/memory/dockyard/abc"
    assert dirs["cpu"] == dirs["cpuacct"] == f"{tmp_path}/cpu,cpuacct/dockyard/abc"
    assert "name=systemd" not in dirs and "" not in dirs
    cg = locate_container_cgroup(info, "/dockyard/abc")
    assert cg.version == 1 and cg.dir("pids") == f"{tmp_path}/pids/dockyard/abc"
    assert cg.dir("rdma") is None


def test_hybrid_dirs_are_the_v1_ones(tmp_path):
    info = _info("hybrid_host", tmp_path, {"unified/cgroup.controllers": "hugetlb\n"})
    dirs = container_cgroup_dirs(info, "/dockyard/abc")
    assert set(dirs) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                         "pids"}
    assert dirs["blkio"] == f"{tmp_path}/blkio/dockyard/abc"


def test_v2_single_dir(tmp_path):
    info = _info("v2_host", tmp_path, {"cgroup.controllers": "cpu memory pids\n"})
    assert container_cgroup_dir(info, "/dockyard/abc") == f"{tmp_path}/dockyard/abc"
    assert container_cgroup_dirs(info, "dockyard/abc/") == {"": f"{tmp_path}/dockyard/abc"}
    cg = locate_container_cgroup(info, "/dockyard/abc")
    assert cg.dir("memory") == cg.dir("pids") == f"{tmp_path}/dockyard/abc"


def test_container_cgroup_dir_refuses_v1(tmp_path):
    info = _info("v1_host", tmp_path)
    try:
        container_cgroup_dir(info, "/dockyard/abc")
    except ValueError:
        pass
    else:
        raise AssertionError("expected ValueError")


def test_mount_root_is_stripped_inside_a_container_view(tmp_path):
    mountinfo = "40 30 0:31 /docker/outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    info = detect_cgroups(mountinfo, str(tmp_path))
    dirs = container_cgroup_dirs(info, "/docker/outer/dockyard/abc")
    assert dirs["memory"] == f"{tmp_path}/memory/dockyard/abc"


def test_process_cgroup_v1_and_v2(tmp_path):
    info = _info("v1_host", tmp_path)
    cg = process_cgroup(info, (FIXTURES / "proc" / "cgroup_v1").read_text())
    assert cg.dir("memory") == f"{tmp_path}/memory/dockyard/4f1c2d"
    assert cg.dir("hugetlb") == f"{tmp_path}/hugetlb"
    v2 = _info("v2_host", tmp_path / "v2", {"cgroup.controllers": "memory\n"})
    cg2 = process_cgroup(v2, "0::/dockyard/abc\n")
    assert cg2.version == 2 and cg2.dir("memory") == f"{tmp_path}/v2/dockyard/abc"
    assert process_cgroup(v2, "").dirs == {}


def test_read_process_cgroup_of_a_missing_pid_is_empty(tmp_path):
    info = _info("v1_host", tmp_path)
    assert read_process_cgroup(info, 2**30).dirs == {}
