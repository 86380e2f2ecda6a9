"""verify_resources: every check, the values it drops, and the order in which
the checks run (the first error for a request is the one dockerd gives)."""

from __future__ import annotations

import copy
import itertools

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci.host import HostFacts
from dockyard.oci.resources import parse_cpuset, verify_resources

MB = 1 << 20
DEV = [{"Path": "/dev/sda", "Rate": 1}]
DEFAULT_HOST = HostFacts()


def err(resources: dict, host: HostFacts = DEFAULT_HOST, update: bool = False) -> str:
    with pytest.raises(InvalidParameter) as e:
        verify_resources(resources, host, update)
    return e.value.message


# One failing request per check, in the order the checks run, with disjoint
# keys, each failing alone on HOST with its message.
HOST = HostFacts(ncpu=2, cpus_available="0-1", mems_available="0", kernel_memory=True,
                 blkio_weight=False, blkio_weight_device=False)
IN_ORDER = [
    ({"CpuRealtimeRuntime": 100}, "kernel does not support CPU real-time scheduler"),
    ({"CpuShares": -1}, "invalid CPU shares (-1): value must be a positive integer"),
    ({"IOMaximumBandwidth": 10},
     "invalid option: QoS maximum bandwidth configuration is not supported on linux"),
    ({"IOMaximumIOps": 10},
     "invalid option: QoS maximum IOPs configuration is not supported on linux"),
    ({"Memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
    ({"MemorySwap": 16 * MB},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"MemoryReservation": 4 * MB}, "Minimum memory reservation allowed is 6MB"),
    ({"KernelMemory": 1 * MB}, "Minimum kernel memory limit allowed is 4MB"),
    ({"NanoCpus": -1}, "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"CpuPeriod": 999},
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpusetCpus": "0-3"}, "Requested CPUs are not available - requested 0-3, available: 0-1"),
    ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
    ({"BlkioWeight": 300}, ("Your kernel does not support Block I/O weight or the cgroup is not "
                            "mounted: --blkio-weight cannot be enforced on this host")),
    ({"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 5}]},
     "Range of blkio weight is from 10 to 1000"),
]


@pytest.mark.parametrize("resources, msg", IN_ORDER, ids=[m[:40] for _, m in IN_ORDER])
def test_each_check_alone(resources, msg):
    assert err(resources, HOST) == msg


@pytest.mark.parametrize("first, later", list(itertools.combinations(range(len(IN_ORDER)), 2)))
def test_the_earlier_check_wins(first, later):
    assert err({**IN_ORDER[first][0], **IN_ORDER[later][0]}, HOST) == IN_ORDER[first][1]


def test_nano_cpus_checks_in_order():
    no_cfs = HostFacts(ncpu=2, cpu_cfs_quota=False)
    both = {"NanoCpus": 10**9, "CpuPeriod": 100000, "CpuQuota": 50000}
    assert err(both, no_cfs) == "Conflicting options: Nano CPUs and CPU Period cannot both be set"
    assert err({"NanoCpus": 10**9, "CpuQuota": 50000}, no_cfs) == \
        "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
    assert err({"NanoCpus": 3 * 10**9}, no_cfs) == (
        "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the "
        "cgroup is not mounted")
    assert err({"NanoCpus": 3 * 10**9}, HostFacts(ncpu=2)) == \
        "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"


def test_blkio_weight_device_range_comes_before_support():
    host = HostFacts(blkio_weight_device=False)
    assert err({"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 1001}]}, host) == \
        "Range of blkio weight is from 10 to 1000"
    assert err({"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 300}]}, host) == (
        "Your kernel does not support Block I/O weight_device or the cgroup is not mounted: "
        "--blkio-weight-device cannot be enforced on this host")
    ok = HostFacts(blkio_weight_device=True)
    assert verify_resources({"BlkioWeightDevice": [{"Path": "/dev/sda"}]}, ok)[0] == []


def test_every_discard_warning_in_order():
    host = HostFacts(swap_limit=False, memory_reservation=False, memory_swappiness=False,
                     kernel_memory=False, oom_kill_disable=False, pids_limit=False,
                     cpu_shares=False, cpu_cfs_period=False, cpuset=False,
                     blkio_throttle=False)
    resources = {
        "Memory": 64 * MB, "MemorySwap": 128 * MB, "MemorySwappiness": 50,
        "MemoryReservation": 32 * MB, "KernelMemory": 8 * MB, "OomKillDisable": True,
        "PidsLimit": 10, "CpuShares": 512, "CpuPeriod": 100000, "CpuQuota": 50000,
        "CpuPercent": 10, "CpusetCpus": "0", "CpusetMems": "0",
        "BlkioDeviceReadBps": DEV, "BlkioDeviceWriteBps": DEV,
        "BlkioDeviceReadIOps": DEV, "BlkioDeviceWriteIOps": DEV,
    }
    warnings, adjusted = verify_resources(resources, host)
    assert warnings == [
        ("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
        "Memory limited without swap."),
        ("Your kernel does not support memory swappiness capabilities or the cgroup is not "
        "mounted. Memory swappiness discarded."),
        ("Your kernel does not support memory soft limit capabilities or the cgroup is not "
        "mounted. Limitation discarded."),
        ("Your kernel does not support kernel memory limit capabilities or the cgroup is not "
        "mounted. Limitation discarded."),
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        ("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
        "PIDs limit discarded."),
        ("Your kernel does not support CPU shares or the cgroup is not mounted. "
        "Shares discarded."),
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "linux does not support CPU percent. Percent discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        ("Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. "
        "Block I/O BPS read limit discarded."),
        ("Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. "
        "Block I/O BPS write limit discarded."),
        ("Your kernel does not support IOPS Block read limit or the cgroup is not mounted. "
        "Block I/O IOPS read limit discarded."),
        ("Your kernel does not support IOPS Block write limit or the cgroup is not mounted. "
        "Block I/O IOPS write limit discarded."),
    ]
    assert adjusted == {
        "Memory": 64 * MB, "MemorySwap": -1, "MemorySwappiness": None,
        "MemoryReservation": 0, "KernelMemory": 0, "OomKillDisable": None,
        "PidsLimit": None, "CpuShares": 0, "CpuPeriod": 0, "CpuQuota": 0,
        "CpuPercent": 0, "CpusetCpus": "", "CpusetMems": "",
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
    }


def test_dropped_values_no_longer_fail_later_checks():
    # unsupported, so discarded before their ranges are checked
    no_kmem = HostFacts(kernel_memory=False)
    assert verify_resources({"KernelMemory": 1 * MB}, no_kmem)[1]["KernelMemory"] == 0
    no_cfs = HostFacts(cpu_cfs_quota=False)
    assert verify_resources({"CpuPeriod": 999, "CpuQuota": 999}, no_cfs)[0] == [
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded."]
    no_cpuset = HostFacts(cpuset=False, cpus_available="0")
    assert len(verify_resources({"CpusetCpus": "0-9"}, no_cpuset)[0]) == 1
    no_res = HostFacts(memory_reservation=False)
    assert len(verify_resources({"MemoryReservation": 1 * MB}, no_res)[0]) == 1


def test_a_discarded_memory_limit_counts_as_none():
    no_mem = HostFacts(memory_limit=False, swap_limit=False)
    limit_warning = ("Your kernel does not support memory limit capabilities or the cgroup is "
                     "not mounted. Limitation discarded.")
    # no swap warning, and the swap is not checked against the dropped limit
    warnings, adjusted = verify_resources({"Memory": 64 * MB, "MemorySwap": 8 * MB}, no_mem)
    assert warnings == [limit_warning]
    assert (adjusted["Memory"], adjusted["MemorySwap"]) == (0, -1)
    # a reservation above the dropped limit is fine
    assert verify_resources({"Memory": 8 * MB, "MemoryReservation": 16 * MB}, no_mem)[0] == \
        [limit_warning]
    # and OomKillDisable now has no limit beside it
    assert verify_resources({"Memory": 64 * MB, "OomKillDisable": True}, no_mem)[0] == [
        limit_warning,
        ("OOM killer is disabled for the container, but no memory limit is set, this can "
        "result in the system running out of resources.")]


def test_silent_discards():
    # only a value that would have limited something is worth a warning
    no_oom = HostFacts(oom_kill_disable=False)
    assert verify_resources({"OomKillDisable": False}, no_oom) == ([], {"OomKillDisable": None})
    no_pids = HostFacts(pids_limit=False)
    for pids in (0, -1):
        assert verify_resources({"PidsLimit": pids}, no_pids) == ([], {"PidsLimit": None})
    # without CPU shares support a negative value is neither refused nor warned about
    assert verify_resources({"CpuShares": -1}, HostFacts(cpu_shares=False)) == \
        ([], {"CpuShares": -1})


def test_swappiness_minus_one_means_unset():
    assert verify_resources({"MemorySwappiness": -1}, HostFacts(memory_swappiness=False)) == \
        ([], {"MemorySwappiness": None})


def test_kernel_memory_where_supported():
    host = HostFacts(kernel_memory=True)
    assert verify_resources({"KernelMemory": 8 * MB}, host) == ([], {"KernelMemory": 8 * MB})


def test_update_may_set_swap_alone():
    assert verify_resources({"MemorySwap": 16 * MB}, HostFacts(), update=True) == \
        ([], {"MemorySwap": 16 * MB})


def test_the_request_is_not_changed():
    resources = {"Memory": 64 * MB, "MemorySwappiness": -1, "BlkioDeviceReadBps": DEV,
                 "CpuPercent": 10}
    before = copy.deepcopy(resources)
    verify_resources(resources, HostFacts(swap_limit=False, blkio_throttle=False))
    assert resources == before


def test_cpuset_syntax():
    assert parse_cpuset("") == set()
    assert parse_cpuset("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(ValueError, match="invalid range format: 3-1"):
        parse_cpuset("3-1")
    assert err({"CpusetCpus": "3-1"}) == \
        "Invalid value 3-1 for cpuset cpus: invalid range format: 3-1"
    assert err({"CpusetMems": "0,"}) == "Invalid value 0, for cpuset mems: invalid format: 0,"
    # a host that reports nothing available has nothing to give
    assert err({"CpusetCpus": "0"}, HostFacts(cpus_available="")) == \
        "Requested CPUs are not available - requested 0, available: "
