from __future__ import annotations

import dataclasses

import pytest
from oci_testutil import V1_HOST, V2_HOST, each_host

from dockyard.errors import InvalidParameter
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.oci.validate import validate_create

CFG = {"Image": "busybox", "Cmd": ["true"]}
MB = 1 << 20


def check(hc=None, cfg=None, host=V1_HOST, nc=None, **kw) -> list[str]:
    return validate_create({**CFG, **(cfg or {})}, hc or {}, nc or {}, host, **kw)


def err(hc=None, cfg=None, host=V1_HOST, nc=None, **kw) -> str:
    with pytest.raises(InvalidParameter) as e:
        check(hc, cfg, host, nc, **kw)
    assert e.value.status == 400
    return e.value.message


@each_host
def test_plain_request_has_no_warnings(host):
    assert check({}, host=host) == []
    assert check(None, host=host) == []


@each_host
@pytest.mark.parametrize("mode", ["", "default", "bridge"])
def test_no_ip_forwarding_warning_without_bridge_networking(host, mode):
    # a "bridge" container gets a network namespace with loopback only, so
    # the host's net.ipv4.ip_forward matters to none: no "IPv4 forwarding is
    # disabled" warning, whatever it is
    assert check({"NetworkMode": mode}, host=host) == []


def test_ip_forwarding_is_no_input_to_validation():
    # so the host's setting cannot reach a create's warnings
    assert [f.name for f in dataclasses.fields(HostFacts) if "forward" in f.name] == []


@each_host
@pytest.mark.parametrize("hc,msg", [
    ({"Memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
    ({"MemoryReservation": 4 * MB}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 8 * MB, "MemoryReservation": 16 * MB},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"Memory": 16 * MB, "MemorySwap": 8 * MB},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 16 * MB},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000},
     "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000},
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 999},
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuPeriod": 1000001},
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpuShares": -1}, "invalid CPU shares (-1): value must be a positive integer"),
    ({"OomScoreAdj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ({"OomScoreAdj": -1001}, "Invalid value -1001, range for oom score adj is [-1000, 1000]"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
    ({"PidMode": "container:"}, "invalid PID mode: container:"),
    ({"UTSMode": "private"}, "invalid UTS mode: private"),
    ({"CgroupnsMode": "bogus"}, "invalid cgroup namespace mode: bogus"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
     "can't create 'AutoRemove' container with restart policy"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "no", "MaximumRetryCount": -1}},
     ("invalid restart policy: maximum retry count can only be used with 'on-failure' and "
     "cannot be negative")),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"RestartPolicy": {"Name": "sometimes"}},
     ("invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
     "'on-failure', or 'unless-stopped'")),
    ({"Isolation": "hyperv"}, "invalid isolation (hyperv): linux only supports 'default'"),
    ({"IOMaximumBandwidth": 10},
     "invalid option: QoS maximum bandwidth configuration is not supported on linux"),
    ({"IOMaximumIOps": 10},
     "invalid option: QoS maximum IOPs configuration is not supported on linux"),
    ({"CpuRealtimeRuntime": 100}, "kernel does not support CPU real-time scheduler"),
    ({"Runtime": "kata"}, "unknown or invalid runtime name: kata"),
    ({"Tmpfs": {"/": ""}}, "invalid specification: destination can't be '/'"),
    ({"Tmpfs": {"run": ""}}, "invalid mount path: 'run' mount path must be absolute"),
    ({"ExtraHosts": ["nocolon"]}, 'bad format for add-host: "nocolon"'),
    ({"ExtraHosts": ["h:1.2.3"]}, 'invalid IP address in add-host: "1.2.3"'),
    ({"PortBindings": {"0/tcp": []}}, 'invalid port specification: "0/tcp"'),
    ({"PortBindings": {"80/tcp": [{"HostPort": "http"}]}}, 'invalid port specification: "http"'),
    ({"Annotations": {"": "x"}},
     "invalid Annotations: the empty string is not permitted as an annotation key"),
    ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule format: 'c 1:3'"),
    ({"Devices": [{"PathOnHost": "/dev/fuse", "CgroupPermissions": "rwx"}]},
     "invalid device mode: rwx"),
    ({"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]},
     'could not select device driver "" with capabilities: [[gpu]]'),
    ({"DeviceRequests": [{"Driver": "nvidia", "Capabilities": [["gpu", "utility"]]}]},
     'could not select device driver "nvidia" with capabilities: [[gpu utility]]'),
    ({"DeviceRequests": [{"Driver": "cdi", "DeviceIDs": ["vendor.com/gpu=0"]}]},
     "CDI device injection failed: unresolvable CDI devices vendor.com/gpu=0"),
])
def test_host_config_errors(host, hc, msg):
    assert err(hc, host=host) == msg


def test_cpu_range_names_host_cpus():
    assert err({"NanoCpus": 3 * 10**9}, host=V1_HOST) == \
        "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
    assert err({"NanoCpus": -1}, host=V2_HOST) == \
        "range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"


def test_cpuset_against_host():
    assert err({"CpusetCpus": "0-3"}, host=V1_HOST) == \
        "Requested CPUs are not available - requested 0-3, available: 0-1"
    assert check({"CpusetCpus": "0-3"}, host=V2_HOST) == []
    assert err({"CpusetMems": "1"}, host=V2_HOST) == \
        "Requested memory nodes are not available - requested 1, available: 0"
    assert err({"CpusetCpus": "a"}).startswith("Invalid value a for cpuset cpus")


def test_swappiness():
    assert err({"MemorySwappiness": 101}, host=V1_HOST) == \
        "Invalid value: 101, valid memory swappiness range is 0-100"
    # -1 means unset
    assert check({"MemorySwappiness": -1}, host=V1_HOST) == []
    # cgroup v2 has no swappiness: warning, value discarded
    assert check({"MemorySwappiness": 60}, host=V2_HOST) == [
        ("Your kernel does not support memory swappiness capabilities or the cgroup is not "
        "mounted. Memory swappiness discarded.")]


def test_memory_swap_minus_one_is_fine():
    assert check({"Memory": 64 * MB, "MemorySwap": -1}) == []


def test_blkio_weight():
    # no weight support: an error, not dockerd's silent discard
    assert err({"BlkioWeight": 300}, host=V1_HOST).startswith(
        "Your kernel does not support Block I/O weight or the cgroup is not mounted")
    assert err({"BlkioWeight": 5}, host=V1_HOST) == "Range of blkio weight is from 10 to 1000"
    assert err({"BlkioWeightDevice": [{"Path": "/dev/vda", "Weight": 300}]},
               host=V1_HOST).startswith("Your kernel does not support Block I/O weight_device")
    assert err({"BlkioWeight": 5}, host=V2_HOST) == "Range of blkio weight is from 10 to 1000"
    assert check({"BlkioWeight": 500}, host=V2_HOST) == []


def test_warnings():
    assert check({"OomKillDisable": True}) == [
        ("OOM killer is disabled for the container, but no memory limit is set, this can "
        "result in the system running out of resources.")]
    no_oom = HostFacts(oom_kill_disable=False)
    assert check({"OomKillDisable": True}, host=no_oom) == [
        "Your kernel does not support OomKillDisable. OomKillDisable discarded."]
    assert check({"OomKillDisable": False}, host=no_oom) == []
    assert check({"KernelMemory": 8 * MB}) == [
        ("Your kernel does not support kernel memory limit capabilities or the cgroup is not "
        "mounted. Limitation discarded.")]
    assert check({"NetworkMode": "host", "PortBindings": {"80/tcp": [{}]}}) == [
        "Published ports are discarded when using host network mode"]
    assert check({"Links": ["db:db"]}) == [
        ("Links on the default bridge network are deprecated and will be removed in a future "
        "release. Use a custom network instead.")]
    assert check({"CpuPercent": 50}) == ["linux does not support CPU percent. Percent discarded."]
    nomem = HostFacts(memory_limit=False)
    assert check({"Memory": 64 * MB}, host=nomem) == [
        ("Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
        "Limitation discarded.")]
    assert check({"PidsLimit": 10}, host=HostFacts(pids_limit=False)) == [
        ("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
        "PIDs limit discarded.")]
    assert check({"BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}]},
                 host=HostFacts(blkio_throttle=False)) == [
        ("Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. "
        "Block I/O BPS read limit discarded.")]


def test_realtime():
    rt = HostFacts(cpu_realtime=True)
    assert check({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500}, host=rt) == []
    assert err({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000}, host=rt) == \
        "cpu real-time runtime cannot be higher than cpu real-time period"


@pytest.mark.parametrize("cfg,msg", [
    ({"Hostname": "h" * 65}, f'hostname "{"h" * 65}" is too long (maximum 64 bytes)'),
    ({"WorkingDir": "rel/dir"},
     "the working directory 'rel/dir' is invalid, it needs to be an absolute path"),
    ({"StopSignal": "SIGFOO"}, "invalid signal: SIGFOO"),
    ({"Env": ["=x"]}, "invalid environment variable: =x"),
    ({"Healthcheck": {"Interval": 100}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Timeout": 999999}}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
    ({"Healthcheck": {"StartPeriod": 5}}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"StartInterval": 5}},
     "StartInterval in Healthcheck cannot be less than 1ms"),
])
def test_config_errors(cfg, msg):
    assert err({}, cfg) == msg


def test_healthcheck_ok():
    assert check({}, {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10**9,
                                      "Retries": 0, "StartPeriod": 0}}) == []


@pytest.mark.parametrize("hc,cfg,msg", [
    ({"NetworkMode": "container:"}, {},
     "invalid network mode: invalid container format container:<name|id>"),
    ({"NetworkMode": "container:db"}, {"Hostname": "x"},
     "conflicting options: hostname and the network mode"),
    ({"NetworkMode": "container:db", "Dns": ["1.1.1.1"]}, {},
     "conflicting options: dns and the network mode"),
    ({"NetworkMode": "container:db", "ExtraHosts": ["a:1.2.3.4"]}, {},
     "conflicting options: custom host-to-IP mapping and the network mode"),
    ({"NetworkMode": "container:db", "PublishAllPorts": True}, {},
     "conflicting options: port publishing and the container type network mode"),
    ({"NetworkMode": "container:db"}, {"ExposedPorts": {"80/tcp": {}}},
     "conflicting options: port exposing and the container type network mode"),
    ({"NetworkMode": "container:db", "Links": ["a:b"]}, {},
     ("conflicting options: container type network can't be used with links. This would "
     "result in undefined behavior")),
    ({"UTSMode": "host"}, {"Hostname": "x"}, "conflicting options: hostname and the UTS mode"),
    ({"NetworkMode": "host", "Links": ["a:b"]}, {},
     ("conflicting options: host type networking can't be used with links. This would result "
     "in undefined behavior")),
])
def test_network_mode_conflicts(hc, cfg, msg):
    assert err(hc, cfg) == msg


def test_host_network_allows_hostname():
    assert check({"NetworkMode": "host"}, {"Hostname": "x"}) == []


@pytest.mark.parametrize("hc", [
    {"Sysctls": {"net.core.somaxconn": "1024"}},
    {"Sysctls": {"kernel.shmmax": "1"}, "IpcMode": "private"},
    {"Sysctls": {"fs.mqueue.msg_max": "20"}},
    {"Sysctls": {"kernel.domainname": "x"}},
    {"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "container:db"},
])
def test_sysctls_allowed(hc):
    assert check(hc) == []


@pytest.mark.parametrize("hc,msg", [
    ({"Sysctls": {"vm.swappiness": "1"}},
     "sysctl 'vm.swappiness' is not allowed: it is not in a separate kernel namespace"),
    ({"Sysctls": {"net.core.somaxconn": "1"}, "NetworkMode": "host"},
     "sysctl 'net.core.somaxconn' is not allowed when sharing the host's network namespace"),
    ({"Sysctls": {"kernel.msgmax": "1"}, "IpcMode": "host"},
     "sysctl 'kernel.msgmax' is not allowed when sharing the host's IPC namespace"),
    ({"Sysctls": {"kernel.domainname": "x"}, "UTSMode": "host"},
     "sysctl 'kernel.domainname' is not allowed when sharing the host's UTS namespace"),
])
def test_sysctls_refused(hc, msg):
    assert err(hc) == msg


@pytest.mark.parametrize("opt", [
    "seccomp=unconfined", "seccomp=builtin", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
    "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true",
    "no-new-privileges=false", "systempaths=unconfined", "apparmor=unconfined",
    "label=disable", "label:disable", "disable", "writable-cgroups=true",
])
def test_security_opts_accepted(opt):
    assert check({"SecurityOpt": [opt]}) == []


@pytest.mark.parametrize("opt,msg", [
    ("bogus", 'invalid --security-opt 1: "bogus"'),
    ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("seccomp={not json", "Decoding seccomp profile failed: "),
    ("apparmor=myprofile", ('AppArmor is not enabled on this host, cannot use profile '
                           '"myprofile"')),
    ("label=type:svirt_t", ('SELinux is not enabled on this host, cannot use label option '
                           '"type:svirt_t"')),
    ("label=bogus", 'bad label option "bogus"'),
])
def test_security_opts_refused(opt, msg):
    assert err({"SecurityOpt": [opt]}).startswith(msg)


def test_security_opts_with_lsm_present():
    lsm = HostFacts(apparmor=True, selinux=True)
    assert check({"SecurityOpt": ["apparmor=myprofile", "label=type:svirt_t"]}, host=lsm) == []
    noseccomp = HostFacts(seccomp=False)
    assert err({"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']},
               host=noseccomp) == ("seccomp is not enabled in your kernel, cannot run a "
                                   "custom seccomp profile")
    assert check({"SecurityOpt": ["seccomp=unconfined"]}, host=noseccomp) == []


def test_ulimits():
    ok = {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 20000}]}
    assert check(ok, host=V1_HOST) == []
    msg = err({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 65536}]}, host=V1_HOST)
    assert "nofile" in msg and "65536" in msg and "20000" in msg
    assert "memlock" in err({"Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}]})
    # no ceiling known: anything goes
    assert check({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 65536}]},
                 host=V2_HOST) == []
    assert err({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}) == \
        "invalid ulimit type: bogus"
    assert err({"Ulimits": [{"Name": "core", "Soft": 2, "Hard": 1}]}) == \
        "ulimit soft limit must be less than or equal to hard limit: 2 > 1"


def test_userns_remap_conflicts():
    opts = EngineOptions(userns_remap=True)
    assert err({"Privileged": True}, opts=opts) == (
        "privileged mode is incompatible with user namespaces.  You must run the container "
        "in the host namespace when running privileged mode")
    assert err({"NetworkMode": "host"}, opts=opts) == (
        "cannot share the host's network namespace when user namespaces are enabled")
    assert err({"PidMode": "host"}, opts=opts) == (
        "cannot share the host PID namespace when user namespaces are enabled")
    assert check({"Privileged": True, "UsernsMode": "host"}, opts=opts) == []


def test_systemd_cgroup_parent():
    opts = EngineOptions(cgroup_driver="systemd")
    assert err({"CgroupParent": "/mygroup"}, opts=opts) == \
        'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"'
    assert check({"CgroupParent": "my.slice"}, opts=opts) == []


def test_cdi_device_known():
    h = HostFacts(cdi_devices=frozenset({"vendor.com/gpu=0"}))
    assert check({"DeviceRequests": [{"Driver": "cdi", "DeviceIDs": ["vendor.com/gpu=0"]}]},
                 host=h) == []
    assert err({"DeviceRequests": [{"Driver": "cdi", "Count": 1}]}, host=h) == \
        "unexpected count in CDI device request"


def test_cgroupns_unsupported_warning():
    h = HostFacts(cgroup_namespaces=False)
    assert check({"CgroupnsMode": "private"}, host=h) == [
        "Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded."]


def test_platform_warning():
    assert check({}, image_platform={"os": "linux", "architecture": "amd64"}) == []
    assert check({}, image_platform={"os": "linux", "architecture": "arm64", "variant": "v8"}) \
        == [("The requested image's platform (linux/arm64/v8) does not match the detected host "
            "platform (linux/amd64) and no specific platform was requested")]


def test_networking_config():
    nc = {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}}}
    assert err({}, nc=nc) == ("invalid config for network bridge: invalid endpoint settings:\n"
                              "user-specified IP address is supported on user-defined "
                              "networks only")
    nc = {"EndpointsConfig": {"mynet": {"IPAMConfig": {"IPv4Address": "10.0.0.9"},
                                        "Aliases": ["a"]}}}
    assert check({"NetworkMode": "mynet"}, nc=nc) == []
    assert err({}, nc={"EndpointsConfig": {"x": None}}) == \
        "invalid config for network x: EndpointsConfig is nil"


# -- what reaches the process and the /etc files -----------------------------

@pytest.mark.parametrize(("cfg", "msg"), [
    ({"WorkingDir": "/tmp\0x"}, 'invalid WorkingDir: "/tmp\\x00x" contains a NUL byte'),
    ({"Cmd": ["echo", "a\0b"]}, 'invalid Cmd: "a\\x00b" contains a NUL byte'),
    ({"Entrypoint": ["/bin/sh\0"]}, 'invalid Entrypoint: "/bin/sh\\x00" contains a NUL byte'),
    ({"Env": ["A=1\0B=2"]}, 'invalid Env: "A=1\\x00B=2" contains a NUL byte'),
    ({"User": "root\0"}, 'invalid User: "root\\x00" contains a NUL byte'),
    ({"Hostname": "a\nb"}, ('invalid hostname "a\\nb": whitespace and control characters '
                           "are not allowed")),
    ({"Domainname": "a b"}, ('invalid domainname "a b": whitespace and control characters '
                           "are not allowed")),
])
def test_process_and_host_name_strings(cfg, msg):
    assert err({}, cfg) == msg


@pytest.mark.parametrize(("hc", "msg"), [
    ({"Dns": ["1.1.1.1\nnameserver 6.6.6.6"]},
     'invalid IP address in dns: "1.1.1.1\\nnameserver 6.6.6.6"'),
    ({"Dns": ["dns.example"]}, 'invalid IP address in dns: "dns.example"'),
    ({"DnsSearch": ["a.example\nnameserver 6.6.6.6"]},
     '"a.example\\nnameserver 6.6.6.6" is not a valid domain'),
    ({"DnsSearch": ["-bad-"]}, "-bad- is not a valid domain"),
    ({"DnsSearch": ["123"]}, "123 is not a valid domain"),
    ({"DnsSearch": ["example.com\n"]}, ('invalid dns search domain "example.com\\n": '
                                        "whitespace and control characters are not allowed")),
    ({"DnsOptions": ["ndots:1\nnameserver 6.6.6.6"]},
     ('invalid dns option "ndots:1\\nnameserver 6.6.6.6": whitespace and control characters '
     "are not allowed")),
    ({"DnsOptions": ["ndots:1 attempts:2"]},
     ('invalid dns option "ndots:1 attempts:2": whitespace and control characters are not '
     "allowed")),
    ({"ExtraHosts": ["a\nb:1.2.3.4"]}, 'bad format for add-host: "a\\nb:1.2.3.4"'),
    ({"ExtraHosts": ["a b:1.2.3.4"]}, 'bad format for add-host: "a b:1.2.3.4"'),
    ({"ExtraHosts": ["a:1.2.3.4\n5.6.7.8 b"]},
     'invalid IP address in add-host: "1.2.3.4\\n5.6.7.8 b"'),
    ({"ExtraHosts": ["a"]}, 'bad format for add-host: "a"'),
    ({"CgroupParent": "x\ny"}, ('invalid cgroup-parent "x\\ny": control characters are not '
                               "allowed")),
])
def test_etc_options_cannot_add_lines(hc, msg):
    assert err(hc) == msg


def test_etc_options_dockers_accepted_forms():
    assert check({"Dns": ["1.1.1.1", "2001:db8::1", " 8.8.8.8 "],
                  "DnsSearch": ["example.com", ".", "a-b.example.", "x"],
                  "DnsOptions": ["ndots:2", "", "edns0"],
                  "ExtraHosts": ["db:10.0.0.5", "gw:host-gateway", "v6:::1"]},
                 {"Hostname": "web-1", "Domainname": "example.org"}) == []
