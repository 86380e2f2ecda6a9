from __future__ import annotations

import pytest
from oci_testutil import SAMPLE_PROFILE, V1_HOST, V2_HOST

from dockyard.errors import InvalidParameter
from dockyard.oci.caps import DEFAULT_CAPS
from dockyard.oci.etcfiles import host_network_hosts_file, hostname_file, hosts_file, resolv_conf
from dockyard.oci.host import EngineOptions
from dockyard.oci.normalize import command_of, merge_image_config, normalize_host_config
from dockyard.oci.seccomp import build_seccomp

# -- normalize ------------------------------------------------------------


def test_normalize_defaults_v1():
    hc = normalize_host_config({"Dns": [], "Binds": None}, V1_HOST)
    assert hc["NetworkMode"] == "bridge"
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["ShmSize"] == 67108864
    assert hc["IpcMode"] == "private"
    assert hc["CgroupnsMode"] == "host"
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert hc["Runtime"] == "runc"
    assert hc["OomKillDisable"] is False
    assert hc["PortBindings"] == {}
    assert hc["ConsoleSize"] == [0, 0]
    assert hc["Dns"] == [] and hc["Binds"] is None      # echoed as sent
    assert hc["MaskedPaths"][:2] == ["/proc/acpi", "/proc/asound"]
    assert hc["ReadonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                   "/proc/sysrq-trigger"]
    assert "SecurityOpt" not in hc


def test_normalize_v2_and_privileged():
    assert normalize_host_config({"NetworkMode": "default"}, V2_HOST)["CgroupnsMode"] == "private"
    priv = normalize_host_config({"Privileged": True}, V1_HOST)
    assert priv["CgroupnsMode"] == "host"
    assert priv["SecurityOpt"] == ["label=disable"]
    assert "MaskedPaths" not in priv and "ReadonlyPaths" not in priv
    assert normalize_host_config({"Privileged": True}, V2_HOST)["CgroupnsMode"] == "private"
    assert normalize_host_config({"IpcMode": "host"}, V1_HOST)["SecurityOpt"] == [
        "label=disable"]
    assert normalize_host_config({"PidMode": "host", "SecurityOpt": ["label=type:x"]},
                                 V1_HOST)["SecurityOpt"] == ["label=type:x"]


def test_normalize_memory_and_discards():
    hc = normalize_host_config({"Memory": 64 << 20}, V1_HOST)
    assert hc["MemorySwap"] == 128 << 20
    hc = normalize_host_config({"Memory": 64 << 20, "MemorySwappiness": 30}, V2_HOST)
    assert hc["MemorySwappiness"] is None
    assert normalize_host_config({"MemorySwappiness": -1}, V1_HOST)["MemorySwappiness"] is None
    opts = EngineOptions(default_shm_size=1 << 20, default_runtime="crun",
                         runtimes=frozenset({"crun"}), log_driver="local")
    hc = normalize_host_config({"ShmSize": 0, "RestartPolicy": {"Name": ""}}, V1_HOST, opts)
    assert (hc["ShmSize"], hc["Runtime"], hc["LogConfig"]["Type"]) == (1 << 20, "crun", "local")


def test_merge_image_config():
    img = {"User": "app", "Env": ["PATH=/usr/bin", "LANG=C"], "Cmd": ["nginx"],
           "Entrypoint": ["/docker-entrypoint.sh"], "WorkingDir": "/srv",
           "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "1", "b": "2"},
           "StopSignal": "SIGQUIT", "Volumes": {"/data": {}},
           "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}}
    c = merge_image_config({"Env": ["LANG=en"], "Labels": {"a": "x"},
                            "ExposedPorts": {"443/tcp": {}},
                            "Healthcheck": {"Interval": 7}}, img)
    assert c["User"] == "app" and c["WorkingDir"] == "/srv" and c["StopSignal"] == "SIGQUIT"
    assert c["Env"] == ["LANG=en", "PATH=/usr/bin"]
    assert c["Labels"] == {"a": "x", "b": "2"}
    assert set(c["ExposedPorts"]) == {"80/tcp", "443/tcp"}
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 7, "Retries": 2,
                                "Timeout": 0, "StartPeriod": 0, "StartInterval": 0}
    assert command_of(c) == ("/docker-entrypoint.sh", ["nginx"])
    # a Cmd from the request replaces the image Cmd, keeps the entrypoint
    assert command_of(merge_image_config({"Cmd": ["sh"]}, img)) == \
        ("/docker-entrypoint.sh", ["sh"])
    # an entrypoint from the request drops the image Cmd
    assert command_of(merge_image_config({"Entrypoint": ["env"]}, img)) == ("env", [])
    # Entrypoint [""] resets it
    assert command_of(merge_image_config({"Entrypoint": [""], "Cmd": ["ls"]}, img)) == \
        ("ls", [])
    with pytest.raises(InvalidParameter, match="no command specified"):
        command_of(merge_image_config({}, {}))


# -- /etc files -----------------------------------------------------------

def test_hostname_file():
    assert hostname_file("abc") == "abc\n"


def test_hosts_file_docker_layout():
    text = hosts_file("0123456789ab", addresses=["172.17.0.2"],
                      extra_hosts=["db:10.0.0.5", "v6:2001:db8::1", "gw:host-gateway"],
                      host_gateway_ips=["172.17.0.1"])
    assert text == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::\tip6-localnet\n"
        "ff00::\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
        "10.0.0.5\tdb\n"
        "2001:db8::1\tv6\n"
        "172.17.0.1\tgw\n"
        "172.17.0.2\t0123456789ab\n")


def test_hosts_file_domain_and_no_ipv6():
    text = hosts_file("web", "example.org", ["10.1.0.2", "fd00::2"],
                      extra_hosts=["v6:::1"], ipv6=False)
    assert text == "127.0.0.1\tlocalhost\n10.1.0.2\tweb.example.org web\n"
    assert hosts_file("a.b", addresses=["10.0.0.1"]).endswith("10.0.0.1\ta.b a\n")


def test_host_network_hosts_file():
    assert host_network_hosts_file("127.0.0.1 myhost\n") == "127.0.0.1 myhost\n"
    assert host_network_hosts_file("x", ["a:1.2.3.4"]).endswith("1.2.3.4\ta\n")


HOST_RC = """# host file
nameserver 127.0.0.53
nameserver 192.168.1.1
nameserver ::1
nameserver 2001:db8::53
search lan
options edns0 trust-ad
"""


def test_resolv_conf_legacy_drops_loopback_and_v6():
    r = resolv_conf(HOST_RC, comments=False)
    assert r.text == ("nameserver 192.168.1.1\nsearch lan\noptions edns0 trust-ad\n")
    r = resolv_conf(HOST_RC, ipv6=True, comments=False)
    assert "nameserver 2001:db8::53\n" in r.text


def test_resolv_conf_falls_back_to_google():
    r = resolv_conf("nameserver 127.0.0.53\n", comments=False)
    assert r.text == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    r = resolv_conf("nameserver 127.0.0.53\n", ipv6=True, comments=False)
    assert r.text.splitlines()[2:] == ["nameserver 2001:4860:4860::8888",
                                       "nameserver 2001:4860:4860::8844"]
    full = resolv_conf("nameserver 127.0.0.53\n").text
    assert full.startswith("# Generated by Docker Engine.\n")
    assert "# Based on host file: '/etc/resolv.conf' (legacy)\n# Used default nameservers.\n" \
        in full
    assert resolv_conf(None, comments=False).text.startswith("nameserver 8.8.8.8")


def test_resolv_conf_overrides():
    r = resolv_conf(HOST_RC, ["1.1.1.1"], ["a.example", "."], ["ndots:2"], comments=False)
    assert r.text == "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
    full = resolv_conf(HOST_RC, ["1.1.1.1"], dns_options=["ndots:2"]).text
    assert "# Overrides: [nameservers options]\n# Option ndots from: override\n" in full


def test_resolv_conf_internal_resolver_and_host_network():
    r = resolv_conf(HOST_RC, internal_resolver="10.89.0.1", comments=False)
    assert r.text.startswith("nameserver 10.89.0.1\nsearch lan\n")
    assert r.external_nameservers == ("127.0.0.53", "192.168.1.1", "::1", "2001:db8::53")
    r = resolv_conf(HOST_RC, host_network=True, comments=False)
    assert "nameserver 127.0.0.53\n" in r.text


INJECTIONS = ["a\nnameserver 6.6.6.6", "a b", "a\tb", "a\rb", "a\0b", "a\x7fb"]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_etc_writers_refuse_what_would_add_a_line(bad):
    """The second line of defence: whatever reached the builders, no value
    can become a line (or a field) of its own in the container's /etc."""
    calls = [
        lambda: hostname_file(bad),
        lambda: hosts_file(bad, addresses=["10.0.0.2"]),
        lambda: hosts_file("web", bad, addresses=["10.0.0.2"]),
        lambda: hosts_file("web", extra_hosts=[f"{bad}:1.2.3.4"]),
        lambda: hosts_file("web", extra_hosts=[f"db:1.2.3.4{bad}"]),
        lambda: host_network_hosts_file("", [f"{bad}:1.2.3.4"]),
        lambda: resolv_conf(HOST_RC, [f"1.1.1.1{bad}"]),
        lambda: resolv_conf(HOST_RC, dns_search=[bad]),
        lambda: resolv_conf(HOST_RC, dns_options=[bad]),
    ]
    for call in calls:
        with pytest.raises(InvalidParameter):
            call()


def test_etc_writers_texts():
    with pytest.raises(InvalidParameter) as e:
        resolv_conf(HOST_RC, ["1.1.1.1\nnameserver 6.6.6.6"])
    assert e.value.message == 'invalid IP address in dns: "1.1.1.1\\nnameserver 6.6.6.6"'
    with pytest.raises(InvalidParameter) as e:
        hostname_file("a\nb")
    assert e.value.message == ('invalid hostname "a\\nb": whitespace and control characters '
                               "are not allowed")
    # Go's ValidateIPAddress trims surrounding whitespace: the file gets the clean address
    assert hosts_file("web", extra_hosts=["db: 10.0.0.5\n"]).endswith("10.0.0.5\tdb\n")
    assert resolv_conf(HOST_RC, [" 1.1.1.1 "], comments=False).text.startswith(
        "nameserver 1.1.1.1\n")


# -- seccomp ----------------------------------------------------------------

def _names(sc: dict) -> list[str]:
    return [n for r in sc["syscalls"] for n in r["names"]]


def test_seccomp_filters_by_caps_arch_kernel():
    sc = build_seccomp(SAMPLE_PROFILE, DEFAULT_CAPS, "amd64", "6.1.0")
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 38
    assert "defaultErrno" not in sc and "archMap" not in sc
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = _names(sc)
    assert "arch_prctl" in names and "socket" in names
    assert names.count("bpf") == 1
    bpf = next(r for r in sc["syscalls"] if r["names"] == ["bpf"])
    assert bpf == {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    assert "newcall" not in names and "oldcall" in names
    new = build_seccomp(SAMPLE_PROFILE, ["CAP_SYS_ADMIN"], "arm64", "6.18.0")
    assert new["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = _names(new)
    assert "arch_prctl" not in names and "newcall" in names and "oldcall" not in names
    assert "socket" not in names   # CAP_AUDIT_WRITE missing
    assert next(r for r in new["syscalls"] if r["names"] == ["bpf"])["action"] == \
        "SCMP_ACT_ALLOW"
    personality = next(r for r in new["syscalls"] if r["names"] == ["personality"])
    assert personality["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]


def test_seccomp_profile_errors():
    assert build_seccomp({}, DEFAULT_CAPS) is None
    with pytest.raises(InvalidParameter, match="both 'architectures' and 'archMap'"):
        build_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86"}]}, DEFAULT_CAPS)
    with pytest.raises(InvalidParameter, match="both 'name' and 'names'"):
        build_seccomp({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"name": "a", "names": ["b"], "action": "x"}]}, DEFAULT_CAPS)
    with pytest.raises(InvalidParameter, match="invalid kernel version"):
        build_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["a"], "action": "x", "includes": {"minKernel": "5"}}]}, DEFAULT_CAPS)
    sc = build_seccomp({"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"name": "a", "action": "SCMP_ACT_ERRNO"}]}, DEFAULT_CAPS)
    assert sc["syscalls"] == [{"names": ["a"], "action": "SCMP_ACT_ERRNO"}]


@pytest.mark.parametrize("given", [0, -1, -5])
def test_pids_limit_unlimited_is_stored_as_null(given):
    # postContainersCreate: 0 and any negative value mean "no limit"
    assert normalize_host_config({"PidsLimit": given}, V1_HOST)["PidsLimit"] is None


def test_pids_limit_kept_when_positive():
    assert normalize_host_config({"PidsLimit": 20}, V1_HOST)["PidsLimit"] == 20
