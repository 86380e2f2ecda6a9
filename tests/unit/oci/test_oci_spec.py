from __future__ import annotations

import json

import pytest
from oci_testutil import SAMPLE_PROFILE, V1_HOST, V2_HOST, each_host, real_profile

from dockyard.errors import InvalidParameter
from dockyard.oci.cgroupparent import container_cgroups_path, validate_cgroup_parent
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.oci.mounts import MountSpec
from dockyard.oci.normalize import merge_image_config, normalize_host_config
from dockyard.oci.spec import DeviceNode, IDMap, SpecInput, build_runtime_spec

CID = "0123456789ab" + "c" * 52


def spec(hc=None, cfg=None, host=V1_HOST, **kw) -> dict:
    config = {"Image": "busybox", "Cmd": ["sh"], "Hostname": CID[:12], **(cfg or {})}
    opts = kw.pop("opts", EngineOptions())
    return build_runtime_spec(SpecInput(
        CID, config, normalize_host_config(hc or {}, host, opts), "/rootfs",
        host=host, opts=opts, **kw))


def mount(s: dict, dest: str) -> dict | None:
    return next((m for m in s["mounts"] if m["destination"] == dest), None)


def ns_types(s: dict) -> list[str]:
    return [n["type"] for n in s["linux"]["namespaces"]]


@each_host
def test_defaults(host):
    s = spec(host=host)
    assert s["ociVersion"] == "1.0.2-dev"
    assert s["process"]["args"] == ["sh"]
    assert s["process"]["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"HOSTNAME={CID[:12]}"]
    assert s["process"]["cwd"] == "/"
    assert s["process"]["terminal"] is False
    assert s["process"]["oomScoreAdj"] == 0
    assert "rlimits" not in s["process"] and "noNewPrivileges" not in s["process"]
    assert len(s["process"]["capabilities"]["bounding"]) == 14
    assert s["hostname"] == CID[:12]
    assert s["root"] == {"path": "/rootfs", "readonly": False}
    assert s["linux"]["cgroupsPath"] == f"/docker/{CID}"
    expected_ns = ["mount", "network", "uts", "pid", "ipc"]
    if host.cgroup_version == 2:
        expected_ns.append("cgroup")  # CgroupnsMode defaults to private on v2
    assert ns_types(s) == expected_ns
    assert s["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                                    "net.ipv4.ip_unprivileged_port_start": "0"}
    assert s["linux"]["maskedPaths"][0] == "/proc/acpi"
    assert s["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                           "/proc/sysrq-trigger"]
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert mount(s, "/dev/shm")["options"][-1] == "size=67108864"
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"} and len(rules) == 8
    assert "seccomp" not in s["linux"]  # no profile given


def test_entrypoint_cmd_env_tty_user():
    cfg = merge_image_config(
        {"Cmd": ["-c", "echo"], "Env": ["A=1", "PATH=/x"], "Tty": True, "User": "1000:1000",
         "WorkingDir": "/app", "Hostname": "h"},
        {"Entrypoint": ["/bin/sh"], "Cmd": ["ignored"], "Env": ["B=2", "A=0"]})
    s = build_runtime_spec(SpecInput(CID, cfg, normalize_host_config(
        {"GroupAdd": ["42"], "ConsoleSize": [24, 80]}, V1_HOST), "/r", host=V1_HOST))
    p = s["process"]
    assert p["args"] == ["/bin/sh", "-c", "echo"]
    assert p["env"] == ["PATH=/x", "HOSTNAME=h", "TERM=xterm", "A=1", "B=2"]
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 42]}
    assert p["cwd"] == "/app" and p["terminal"] is True
    assert p["consoleSize"] == {"height": 24, "width": 80}


def test_env_unset_by_bare_key():
    s = spec(cfg={"Env": ["PATH"]})
    assert s["process"]["env"] == [f"HOSTNAME={CID[:12]}"]


def test_no_command():
    with pytest.raises(InvalidParameter, match="no command specified"):
        spec(cfg={"Cmd": None})


def test_init():
    s = spec({"Init": True}, init_path="/usr/libexec/podman/catatonit")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert mount(s, "/sbin/docker-init") == {
        "destination": "/sbin/docker-init", "type": "bind",
        "source": "/usr/libexec/podman/catatonit", "options": ["bind", "ro"]}
    # daemon default applies when Init is null; host PID namespace disables it
    assert spec({}, opts=EngineOptions(init=True), init_path="/i")["process"]["args"][0] == \
        "/sbin/docker-init"
    assert spec({"Init": True, "PidMode": "host"})["process"]["args"] == ["sh"]


@each_host
def test_memory_cpu_pids_resources(host):
    s = spec({"Memory": 64 << 20, "MemoryReservation": 32 << 20, "NanoCpus": 1_500_000_000,
              "CpuShares": 512, "PidsLimit": 100, "CpusetCpus": "0-1",
              "OomKillDisable": True}, host=host)
    r = s["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                           "disableOOMKiller": True}
    assert r["cpu"] == {"shares": 512, "cpus": "0-1", "period": 100000, "quota": 150000}
    assert r["pids"] == {"limit": 100}


def test_swap_and_swappiness_v1_vs_v2():
    assert spec({"Memory": 64 << 20, "MemorySwap": -1})["linux"]["resources"]["memory"] == \
        {"limit": 64 << 20, "disableOOMKiller": False}
    r1 = spec({"MemorySwappiness": 10}, host=V1_HOST)["linux"]["resources"]["memory"]
    assert r1["swappiness"] == 10
    r2 = spec({"MemorySwappiness": 10}, host=V2_HOST)["linux"]["resources"]["memory"]
    assert "swappiness" not in r2


def test_pids_unlimited_and_cpu_quota_period():
    r = spec({"PidsLimit": 0, "CpuPeriod": 50000, "CpuQuota": 25000})["linux"]["resources"]
    assert "pids" not in r
    assert r["cpu"] == {"period": 50000, "quota": 25000}


def test_blkio():
    s = spec({"BlkioWeight": 300, "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 200}],
              "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1048576}],
              "BlkioDeviceWriteIOps": [{"Path": "/dev/sda", "Rate": 100}]},
             host=V2_HOST, blkio_devices={"/dev/sda": (8, 0)})
    b = s["linux"]["resources"]["blockIO"]
    assert b == {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                 "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]}
    # v1 host without blkio weight: refused at create time (not silently dropped)
    with pytest.raises(InvalidParameter, match="Block I/O weight"):
        spec({"BlkioWeight": 300}, host=V1_HOST)


def test_devices_and_cgroup_rules():
    fuse = DeviceNode("/dev/fuse", "c", 10, 229, permissions="rwm")
    s = spec({"Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                           "CgroupPermissions": "rwm"}],
              "DeviceCgroupRules": ["c 1:3 rwm", "b *:* r"]}, devices=[fuse])
    assert s["linux"]["devices"] == [{"path": "/dev/fuse", "type": "c", "major": 10,
                                      "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]
    rules = s["linux"]["resources"]["devices"]
    assert rules[8] == {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    assert rules[9] == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    # a wildcard is a missing number (crun writes -1 to devices.allow as is)
    assert rules[10] == {"allow": True, "type": "b", "access": "r"}
    s = spec({"DeviceCgroupRules": ["c 42:* rwm", "b *:7 m"]})
    assert s["linux"]["resources"]["devices"][-2:] == [
        {"allow": True, "type": "c", "major": 42, "access": "rwm"},
        {"allow": True, "type": "b", "minor": 7, "access": "m"}]
    with pytest.raises(InvalidParameter, match="^invalid major value in device cgroup rule "
                                               "format: 'c 99999999999999999999:1 r'$"):
        spec({"DeviceCgroupRules": ["c 99999999999999999999:1 r"]})


@each_host
def test_privileged(host):
    null = DeviceNode("/dev/null", "c", 1, 3)
    s = spec({"Privileged": True}, host=host, host_devices=[null], seccomp_profile=SAMPLE_PROFILE)
    caps = s["process"]["capabilities"]["bounding"]
    assert set(caps) == set(host.cap_bounding)
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert [d["path"] for d in s["linux"]["devices"]] == ["/dev/null"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert "ro" not in mount(s, "/sys")["options"]
    assert "ro" not in mount(s, "/sys/fs/cgroup")["options"]
    assert "seccomp" not in s["linux"]
    # cgroupns: host on v1, private on v2
    assert ("cgroup" in ns_types(s)) == (host.cgroup_version == 2)


def test_privileged_with_explicit_seccomp_gets_it():
    s = spec({"Privileged": True, "SecurityOpt": ["seccomp=builtin"]},
             seccomp_profile=SAMPLE_PROFILE)
    assert "seccomp" in s["linux"]


def test_readonly_rootfs():
    s = spec({"ReadonlyRootfs": True}, hosts_path="/c/hosts", resolv_conf_path="/c/resolv")
    assert s["root"]["readonly"] is True
    assert "ro" in mount(s, "/sys/fs/cgroup")["options"]
    assert "ro" not in mount(s, "/dev/shm")["options"]
    assert "ro" not in mount(s, "/proc")["options"]
    assert mount(s, "/etc/hosts")["options"] == ["rbind", "ro", "rprivate"]


def test_etc_files_and_user_mounts_sorted():
    s = spec({}, hosts_path="/c/hosts", hostname_path="/c/hostname", resolv_conf_path="/c/rc",
             mounts=[MountSpec("/data/sub", "/v/sub"), MountSpec("/data", "/v/data",
                                                                 read_only=True)])
    dests = [m["destination"] for m in s["mounts"]][7:]
    # parents first (by depth), stable otherwise
    assert dests == ["/data", "/data/sub", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    assert mount(s, "/data")["options"] == ["rbind", "ro", "rprivate"]
    rro = spec({}, host=HostFacts(rro_supported=True), mounts=[MountSpec("/d", "/s",
                                                                         read_only=True)])
    assert mount(rro, "/d")["options"] == ["rbind", "rro", "rprivate"]


def test_user_mount_replaces_default_and_dev():
    s = spec({}, mounts=[MountSpec("/dev/shm", "/host/shm")])
    assert mount(s, "/dev/shm")["type"] == "bind"
    s = spec({}, mounts=[MountSpec("/dev", "/host/dev")])
    assert [m["destination"] for m in s["mounts"] if m["destination"].startswith("/dev")] == \
        ["/dev"]


def test_shared_propagation_sets_rootfs_propagation():
    s = spec({}, mounts=[MountSpec("/m", "/src", propagation="rshared")])
    assert s["linux"]["rootfsPropagation"] == "shared"
    assert mount(s, "/m")["options"] == ["rbind", "rshared"]
    s = spec({}, mounts=[MountSpec("/m", "/src", propagation="rslave")])
    assert s["linux"]["rootfsPropagation"] == "rslave"


def test_tmpfs():
    s = spec({"Tmpfs": {"/run": "size=64m,exec", "/tmp": ""}})
    assert mount(s, "/run") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                "options": ["nosuid", "nodev", "rprivate", "size=64m", "exec"]}
    assert mount(s, "/tmp")["options"] == ["noexec", "nosuid", "nodev", "rprivate"]


@pytest.mark.parametrize("ipc,shm,expect", [
    ("none", "", None),
    ("private", "", "tmpfs"),
    ("shareable", "/c/shm", "bind"),
    ("host", "/dev/shm", "bind"),
])
def test_ipc_modes_and_shm(ipc, shm, expect):
    s = spec({"IpcMode": ipc, "ShmSize": 1 << 20}, shm_path=shm)
    m = mount(s, "/dev/shm")
    assert (m["type"] if m else None) == expect
    if expect == "tmpfs":
        assert "size=1048576" in m["options"]
    assert ("ipc" in ns_types(s)) == (ipc != "host")


def test_join_namespaces():
    paths = {"network": "/proc/1/ns/net", "ipc": "/proc/2/ns/ipc", "pid": "/proc/3/ns/pid"}
    s = spec({"NetworkMode": "container:db", "IpcMode": "container:db", "PidMode": "container:db"},
             cfg={"Hostname": ""}, namespace_paths=paths)
    ns = {n["type"]: n.get("path") for n in s["linux"]["namespaces"]}
    assert ns["network"] == "/proc/1/ns/net" and ns["ipc"] == "/proc/2/ns/ipc"
    assert ns["pid"] == "/proc/3/ns/pid"
    assert "net.ipv4.ping_group_range" not in s["linux"].get("sysctl", {})
    with pytest.raises(InvalidParameter):
        spec({"NetworkMode": "container:db"})


def test_host_modes_drop_namespaces():
    s = spec({"NetworkMode": "host", "PidMode": "host", "UTSMode": "host", "IpcMode": "host"},
             cfg={"Hostname": ""})
    assert ns_types(s) == ["mount"]
    assert "hostname" not in s
    assert "sysctl" not in s["linux"]


def test_bridge_netns_path_and_none():
    s = spec({}, namespace_paths={"network": "/run/netns/dy-1"})
    assert {"type": "network", "path": "/run/netns/dy-1"} in s["linux"]["namespaces"]
    s = spec({"NetworkMode": "none"})
    assert {"type": "network"} in s["linux"]["namespaces"]


def test_cgroupns_explicit():
    assert "cgroup" in ns_types(spec({"CgroupnsMode": "private"}, host=V1_HOST))
    assert "cgroup" not in ns_types(spec({"CgroupnsMode": "host"}, host=V2_HOST))


def test_userns_remap():
    opts = EngineOptions(userns_remap=True)
    maps = [IDMap(0, 100000, 65536)]
    s = spec({}, opts=opts, uid_mappings=maps, gid_mappings=maps)
    assert ns_types(s)[-1] == "user"
    assert s["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert "net.ipv4.ping_group_range" not in s["linux"]["sysctl"]
    assert "ro" not in mount(s, "/sys/fs/cgroup")["options"]


def test_sysctls_domainname_and_overrides():
    s = spec({"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "1024",
                          "kernel.shmmax": "1"}}, cfg={"Domainname": "example.org"})
    assert s["linux"]["sysctl"] == {"kernel.domainname": "example.org",
                                    "net.ipv4.ping_group_range": "0 2147483647",
                                    "net.ipv4.ip_unprivileged_port_start": "1024",
                                    "kernel.shmmax": "1"}


def test_security_options_in_spec():
    s = spec({"SecurityOpt": ["no-new-privileges"], "OomScoreAdj": 500})
    assert s["process"]["noNewPrivileges"] is True and s["process"]["oomScoreAdj"] == 500
    assert "noNewPrivileges" not in spec({"SecurityOpt": ["no-new-privileges=false"]},
                                         opts=EngineOptions(no_new_privileges=True))["process"]
    aa = HostFacts(apparmor=True)
    assert spec({}, host=aa)["process"]["apparmorProfile"] == "docker-default"
    assert spec({"Privileged": True}, host=aa)["process"]["apparmorProfile"] == "unconfined"
    assert spec({"SecurityOpt": ["apparmor=mine"]}, host=aa)["process"]["apparmorProfile"] == \
        "mine"
    assert "apparmorProfile" not in spec({})["process"]
    # AppArmor on, docker-default not loaded (no dockerd ever ran): runc would
    # fail every container, so only explicit profiles are named
    bare = HostFacts(apparmor=True, apparmor_default_loaded=False)
    assert "apparmorProfile" not in spec({}, host=bare)["process"]
    assert spec({"SecurityOpt": ["apparmor=mine"]}, host=bare)["process"]["apparmorProfile"] == \
        "mine"
    assert spec({"Privileged": True}, host=bare)["process"]["apparmorProfile"] == "unconfined"


def test_systempaths_unconfined_and_explicit_paths():
    s = spec({"SecurityOpt": ["systempaths=unconfined"]})
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    s = spec({"MaskedPaths": ["/proc/x"], "ReadonlyPaths": []})
    assert s["linux"]["maskedPaths"] == ["/proc/x"] and "readonlyPaths" not in s["linux"]
    s = spec({}, host=HostFacts(thermal_throttle_paths=(
        "/sys/devices/system/cpu/cpu0/thermal_throttle",)))
    assert s["linux"]["maskedPaths"][-1] == "/sys/devices/system/cpu/cpu0/thermal_throttle"


def test_capabilities_in_spec():
    s = spec({"CapAdd": ["SYS_ADMIN"], "CapDrop": ["NET_RAW"]}, seccomp_profile=SAMPLE_PROFILE)
    caps = s["process"]["capabilities"]
    assert "CAP_SYS_ADMIN" in caps["bounding"] and "CAP_NET_RAW" not in caps["effective"]
    assert caps["bounding"] == caps["permitted"] == caps["effective"]
    names = [n for r in s["linux"]["seccomp"]["syscalls"] for n in r["names"]]
    assert names.count("bpf") == 1


def test_rlimits():
    s = spec({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 4096},
                          {"Name": "core", "Soft": -1, "Hard": -1}]},
             opts=EngineOptions(default_ulimits={"nofile": (1, 2), "nproc": (100, 200)}))
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NPROC", "hard": 200, "soft": 100}]


def test_cgroups_path_variants():
    assert spec({"CgroupParent": "mine"})["linux"]["cgroupsPath"] == f"/mine/{CID}"
    assert spec({}, opts=EngineOptions(cgroup_parent="/dockyard"))["linux"]["cgroupsPath"] \
        == f"/dockyard/{CID}"
    assert spec({})["linux"]["cgroupsPath"] == f"/docker/{CID}"
    assert spec({}, cgroups_path="/dockyard/x")["linux"]["cgroupsPath"] == "/dockyard/x"
    sd = EngineOptions(cgroup_driver="systemd")
    assert spec({}, opts=sd)["linux"]["cgroupsPath"] == f"system.slice:docker:{CID}"


@pytest.mark.parametrize(("parent", "path"), [
    ("/x", "/x"), ("x", "/x"), ("/x/y/", "/x/y"), ("../../../x", "/x"),
    ("/../../../x", "/x"), ("a/../../b", "/b"), ("/", ""), ("..", ""), ("//x", "/x"),
])
def test_cgroup_parent_is_confined_to_the_cgroup_root(parent, path):
    assert container_cgroups_path(CID, {"CgroupParent": parent}, "/dockyard") == \
        f"{path}/{CID}"
    # the container's own parent wins over the daemon's
    assert container_cgroups_path(CID, {}, parent) == f"{path}/{CID}"


def test_cgroup_parent_with_control_characters_is_refused():
    validate_cgroup_parent("/a b/c-d_e.f")
    for bad in ("a\nb", "a\0b", "a\tb"):
        with pytest.raises(InvalidParameter, match="^invalid cgroup-parent .*: control "
                                                   "characters are not allowed$"):
            validate_cgroup_parent(bad)


def test_annotations():
    assert spec({"Annotations": {"a": "b"}})["annotations"] == {"a": "b"}
    assert "annotations" not in spec({})


def test_seccomp_unconfined_and_custom():
    assert "seccomp" not in spec({"SecurityOpt": ["seccomp=unconfined"]},
                                 seccomp_profile=SAMPLE_PROFILE)["linux"]
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    s = spec({"SecurityOpt": ["seccomp=" + json.dumps(custom)]}, seccomp_profile=SAMPLE_PROFILE)
    assert s["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    assert "seccomp" not in spec({}, host=HostFacts(seccomp=False),
                                 seccomp_profile=SAMPLE_PROFILE)["linux"]


def test_real_default_profile_is_filtered_for_default_caps():
    s = spec({}, seccomp_profile=real_profile())
    sc = s["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO"
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for rule in sc["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
    allowed = {n for r in sc["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "read" in allowed and "chroot" in allowed and "bpf" not in allowed
