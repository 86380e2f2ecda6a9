"""Every field of a create request is enforced, shown as dockerd shows it, or
refused: the table in oci/options.py covers Docker's structs, each refused
field set to a non-zero value is refused, and each enforced one names the
test that shows it working end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from oci_testutil import V1_HOST

from dockyard.errors import InvalidParameter, NotFound
from dockyard.oci import options
from dockyard.oci.options import (
    CLIENT,
    CREATE_FIELDS,
    ENFORCED,
    METADATA,
    OUTPUT,
    REFUSED,
    WARNED,
    refuse_not_updatable,
    refuse_unsupported,
)
from dockyard.oci.schema import (
    CONFIG,
    ENDPOINT_SETTINGS,
    HOST_CONFIG,
    RESOURCES,
    UPDATE_CONFIG,
    decode_create_request,
)
from dockyard.oci.validate import validate_create

TESTS = Path(__file__).resolve().parents[2]

# The test that shows each enforced (or warned) field doing what Docker does.
NET = "integration/network/test_networks.py::"
VOL = "integration/volumes/test_volume_mounts.py::"
EVIDENCE = {
    "Config.Volumes": VOL + "test_image_volume_is_filled_from_the_image",
    "HostConfig.Binds": VOL + "test_named_volume_keeps_data_between_containers",
    "HostConfig.Mounts": VOL + "test_mount_flag_types",
    "HostConfig.VolumeDriver": VOL + "test_volume_driver_local_and_unknown",
    "HostConfig.VolumesFrom": VOL + "test_volumes_from",
    "Config.ExposedPorts": NET + "test_ephemeral_port_and_publish_all",
    "Config.MacAddress": NET + "test_mac_address_on_the_main_network",
    "HostConfig.PortBindings": NET + "test_published_port_reaches_the_container_from_the_host",
    "HostConfig.PublishAllPorts": NET + "test_ephemeral_port_and_publish_all",
    "HostConfig.Links": NET + "test_legacy_link_on_the_default_bridge",
    "EndpointSettings.IPAMConfig": NET + "test_network_inspect_and_list_shapes",
    "EndpointSettings.Aliases": NET + "test_containers_resolve_each_other_by_name_and_alias",
    "EndpointSettings.MacAddress": NET + "test_mac_address_on_the_main_network",
    "EndpointSettings.Links": NET + "test_link_on_a_user_network",
    "EndpointSettings.DriverOpts": NET + "test_endpoint_driver_options_and_link_local_ips",
    "Config.Hostname": "integration/hostconfig/test_hc_namespaces.py::test_hostname_and_domainname",
    "Config.Domainname": "integration/hostconfig/test_hc_namespaces.py::test_hostname_and_domainname",
    "Config.User": "integration/hostconfig/test_hc_security.py::test_user_by_name",
    "Config.Tty": "integration/hostconfig/test_hc_options.py::test_tty_and_console_size",
    "Config.OpenStdin": "integration/containers/test_run_basics.py::test_stdin_pipe",
    "Config.StdinOnce": "integration/hostconfig/test_hc_options.py::test_stdin_once",
    "Config.Env": "integration/containers/test_exec.py::test_inherits_env_user_workdir",
    "Config.Cmd": "integration/containers/test_run_basics.py::test_run_echo_hello",
    "Config.Healthcheck": "integration/containers/test_health_restart.py::"
                          "test_health_starting_unhealthy_healthy_with_events",
    "Config.Image": "integration/containers/test_run_basics.py::test_run_echo_hello",
    "Config.WorkingDir": "integration/containers/test_exec.py::test_inherits_env_user_workdir",
    "Config.Entrypoint": "integration/hostconfig/test_hc_options.py::test_entrypoint",
    "Config.NetworkDisabled": "integration/hostconfig/test_hc_options.py::"
                              "test_network_disabled",
    "Config.StopSignal": "integration/hostconfig/test_hc_options.py::"
                         "test_stop_signal_and_timeout",
    "Config.StopTimeout": "integration/hostconfig/test_hc_options.py::"
                          "test_stop_signal_and_timeout",
    "HostConfig.LogConfig": "integration/containers/test_json_logs.py::test_log_drivers",
    "HostConfig.NetworkMode": "integration/hostconfig/test_hc_namespaces.py::test_network_none",
    "HostConfig.RestartPolicy": "integration/containers/test_health_restart.py::"
                                "test_on_failure_max_retries",
    "HostConfig.AutoRemove": "integration/containers/test_lifecycle.py::"
                             "test_autoremove_detached",
    "HostConfig.ConsoleSize": "integration/hostconfig/test_hc_options.py::"
                              "test_tty_and_console_size",
    "HostConfig.Annotations": "integration/hostconfig/test_hc_options.py::"
                              "test_annotations_reach_the_runtime",
    "HostConfig.CapAdd": "integration/hostconfig/test_hc_security.py::"
                         "test_cap_drop_all_add_chown",
    "HostConfig.CapDrop": "integration/hostconfig/test_hc_security.py::"
                          "test_cap_drop_all_add_chown",
    "HostConfig.CgroupnsMode": "integration/hostconfig/test_hc_namespaces.py::test_cgroupns",
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_namespaces.py::"
                          "test_dns_and_extra_hosts"
       for k in ("Dns", "DnsOptions", "DnsSearch", "ExtraHosts")},
    "HostConfig.GroupAdd": "integration/hostconfig/test_hc_security.py::test_user_by_name",
    "HostConfig.IpcMode": "integration/hostconfig/test_hc_namespaces.py::"
                          "test_ipc_shareable_and_container",
    "HostConfig.OomScoreAdj": "integration/hostconfig/test_hc_resources.py::"
                              "test_oom_score_adj",
    "HostConfig.PidMode": "integration/hostconfig/test_hc_namespaces.py::"
                          "test_pid_host_and_private",
    "HostConfig.Privileged": "integration/hostconfig/test_hc_security.py::test_privileged",
    "HostConfig.ReadonlyRootfs": "integration/hostconfig/test_hc_security.py::"
                                 "test_read_only_rootfs_with_tmpfs",
    "HostConfig.Tmpfs": "integration/hostconfig/test_hc_security.py::"
                        "test_read_only_rootfs_with_tmpfs",
    "HostConfig.SecurityOpt": "integration/hostconfig/test_hc_security.py::"
                              "test_no_new_privileges",
    "HostConfig.UTSMode": "integration/hostconfig/test_hc_namespaces.py::test_uts_host",
    "HostConfig.UsernsMode": "integration/platform/test_userns.py::"
                             "test_userns_host_opts_out_of_remapping",
    "HostConfig.ShmSize": "integration/hostconfig/test_hc_resources.py::test_shm_size",
    "HostConfig.Sysctls": "integration/hostconfig/test_hc_namespaces.py::test_sysctl",
    "HostConfig.Runtime": "integration/hostconfig/test_hc_security.py::"
                          "test_privileged_with_runc",
    # only "default" exists on Linux: anything else is Docker's 400
    "HostConfig.Isolation": "unit/oci/test_oci_validate.py::test_host_config_errors",
    "HostConfig.MaskedPaths": "integration/hostconfig/test_hc_security.py::"
                              "test_masked_and_readonly_paths",
    "HostConfig.ReadonlyPaths": "integration/hostconfig/test_hc_security.py::"
                                "test_masked_and_readonly_paths",
    "HostConfig.Init": "integration/hostconfig/test_hc_security.py::"
                       "test_init_is_pid1_and_reaps_zombies",
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_resources.py::"
                          "test_cpuset_and_shares"
       for k in ("CpuShares", "CpusetCpus", "CpusetMems")},
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_resources.py::"
                          "test_memory_cpus_pids_visible_in_cgroup"
       for k in ("Memory", "NanoCpus")},
    "HostConfig.PidsLimit": "integration/hostconfig/test_hc_resources.py::"
                            "test_fork_loop_cannot_pass_pids_limit",
    "HostConfig.CgroupParent": "integration/hostconfig/test_hc_options.py::"
                               "test_cgroup_parent_places_the_container",
    # refused with a clear error on kernels without blkio weight (as here)
    "HostConfig.BlkioWeight": "integration/hostconfig/test_hc_errors.py::"
                              "test_blkio_weight_without_kernel_support_is_an_error",
    "HostConfig.BlkioWeightDevice": "unit/oci/test_oci_resources.py::"
                                    "test_blkio_weight_device_range_comes_before_support",
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_resources.py::"
                          "test_device_read_bps_and_iops"
       for k in ("BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                 "BlkioDeviceWriteIOps")},
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_resources.py::test_cpu_period_quota"
       for k in ("CpuPeriod", "CpuQuota")},
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_errors.py::"
                          "test_cpu_rt_runtime_without_parent_budget"
       for k in ("CpuRealtimePeriod", "CpuRealtimeRuntime")},
    "HostConfig.Devices": "integration/hostconfig/test_hc_security.py::test_device_mapping",
    "HostConfig.DeviceCgroupRules": "integration/hostconfig/test_hc_options.py::"
                                    "test_device_cgroup_rule",
    **{f"HostConfig.{k}": "integration/hostconfig/test_hc_resources.py::"
                          "test_memory_reservation_and_swap"
       for k in ("MemoryReservation", "MemorySwap")},
    "HostConfig.MemorySwappiness": "integration/hostconfig/test_hc_resources.py::"
                                   "test_memory_swappiness",
    "HostConfig.OomKillDisable": "integration/hostconfig/test_hc_inspect.py::"
                                 "test_oom_kill_disable_applied",
    "HostConfig.Ulimits": "integration/hostconfig/test_hc_resources.py::test_ulimit",
    "HostConfig.KernelMemory": "integration/hostconfig/test_hc_inspect.py::test_create_warnings",
    "HostConfig.CpuPercent": "unit/oci/test_oci_validate.py::test_warnings",
}

# A non-zero value for every refused field (REFUSED with Docker's own texts
# are refused by validate_create, the rest by refuse_unsupported).
NON_ZERO = {
    "Config.MacAddress": "02:42:ac:11:00:02",
    "HostConfig.PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
    "HostConfig.PublishAllPorts": True,
    "HostConfig.Links": ["other:alias"],
    "HostConfig.StorageOpt": {"size": "1G"},
    "HostConfig.Cgroup": "container:other",
    "HostConfig.KernelMemoryTCP": 1 << 20,
    "HostConfig.CpuCount": 1,
    "HostConfig.IOMaximumIOps": 100,
    "HostConfig.IOMaximumBandwidth": 1 << 20,
    "HostConfig.DeviceRequests": [{"Driver": "nvidia", "Count": -1}],
    "EndpointSettings.IPAMConfig": {"LinkLocalIPs": ["169.254.1.1"]},
    "EndpointSettings.Links": ["other:alias"],
    "EndpointSettings.Aliases": ["web"],
    "EndpointSettings.MacAddress": "02:42:ac:11:00:02",
    "EndpointSettings.DriverOpts": {"a": "b"},
    "EndpointSettings.GwPriority": 1,
}

# What `docker run busybox true` (CLI 28) sends: every field, zero where no flag was given.
CLI_DEFAULT_BODY = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": ["true"], "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": {},
    "NetworkingConfig": {"EndpointsConfig": {"default": {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None}}},
    "HostConfig": {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
        "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
        "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": 0,
        "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None},
}


def _split(req: dict) -> tuple[dict, dict, dict]:
    config = {k: v for k, v in req.items() if k not in ("HostConfig", "NetworkingConfig")}
    return config, req.get("HostConfig") or {}, req.get("NetworkingConfig") or {}


def create(body: dict) -> None:
    """What create does with a body before anything is stored."""
    config, hc, nc = _split(decode_create_request(body))
    validate_create(config, hc, nc, V1_HOST)
    refuse_unsupported(config, hc, nc)


def _request_for(key: str, value: object) -> dict:
    struct, name = key.split(".")
    if struct == "Config":
        return {"Image": "busybox", name: value}
    if struct == "HostConfig":
        return {"Image": "busybox", "HostConfig": {name: value}}
    return {"Image": "busybox", "HostConfig": {"NetworkMode": "host"},
            "NetworkingConfig": {"EndpointsConfig": {"host": {name: value}}}}


def test_the_table_covers_every_field_of_dockers_structs():
    want = {f"Config.{f.name}" for f in CONFIG.fields}
    want |= {f"HostConfig.{f.name}" for f in HOST_CONFIG.fields}
    want |= {f"EndpointSettings.{f.name}" for f in ENDPOINT_SETTINGS.fields}
    assert set(CREATE_FIELDS) == want
    assert {o.status for o in CREATE_FIELDS.values()} == {
        ENFORCED, METADATA, CLIENT, OUTPUT, WARNED, REFUSED}


def test_each_enforced_field_names_the_test_that_shows_it():
    enforced = {k for k, o in CREATE_FIELDS.items() if o.status in (ENFORCED, WARNED)}
    assert set(EVIDENCE) == enforced
    for key, node in EVIDENCE.items():
        path, _, func = node.partition("::")
        text = (TESTS / path).read_text()
        assert re.search(rf"^def {func}\(", text, re.MULTILINE), f"{key}: no test {node}"


@pytest.mark.parametrize("key", sorted(k for k, o in CREATE_FIELDS.items()
                                       if o.status == REFUSED))
def test_each_refused_field_is_refused_when_set(key):
    with pytest.raises((InvalidParameter, NotFound)) as e:
        create(_request_for(key, NON_ZERO[key]))
    text = CREATE_FIELDS[key].text
    if text is not None:
        assert e.value.message == text


def test_zero_values_of_refused_fields_are_fine():
    create(CLI_DEFAULT_BODY)
    create({"Image": "busybox", "HostConfig": {k.split(".")[1]: None for k in CREATE_FIELDS
                                               if k.startswith("HostConfig.")}})


def test_mixed_case_refused_fields_are_refused_too():
    with pytest.raises(InvalidParameter) as e:
        create({"image": "busybox", "hostconfig": {"storageopt": {"size": "1G"}}})
    assert e.value.message == options.CREATE_FIELDS["HostConfig.StorageOpt"].text


def test_host_network_keeps_dockers_published_ports_warning():
    body = {"Image": "busybox", "HostConfig": {"NetworkMode": "host",
                                               "PortBindings": {"80/tcp": [{"HostPort": "80"}]}}}
    config, hc, nc = _split(decode_create_request(body))
    assert validate_create(config, hc, nc, V1_HOST) == [
        "Published ports are discarded when using host network mode"]
    refuse_unsupported(config, hc, nc)


@pytest.mark.parametrize("mode", ["", "default", "bridge", "host", "none", "container:abc"])
def test_network_modes_that_exist(mode):
    refuse_unsupported({}, {"NetworkMode": mode}, {})


def test_output_only_endpoint_fields_are_ignored():
    # as dockerd ignores them
    refuse_unsupported({}, {"NetworkMode": "host"}, {"EndpointsConfig": {"host": {
        "IPAddress": "10.0.0.2", "NetworkID": "x", "DNSNames": ["a"]}}})


def test_update_fields_are_resources():
    names = {f.name for f in RESOURCES.fields}
    assert options.UPDATE_FIELDS <= names
    assert {f.name for f in UPDATE_CONFIG.fields} == names | {"RestartPolicy"}
    refuse_not_updatable({"Memory": 1 << 27, "CgroupParent": "", "MemorySwappiness": -1})
