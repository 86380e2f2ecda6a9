"""Shared data for the oci/ unit tests: a hybrid v1 host like ours, a v2 host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.oci.caps import caps_from_mask
from dockyard.oci.host import HostFacts

# CapBnd of the project's machines: everything but CAP_SYS_RESOURCE
OUR_CAPBND = caps_from_mask(0x000001FFFEFFFFFF)

V1_HOST = HostFacts(
    cgroup_version=1, ncpu=2, cpus_available="0-1", mems_available="0",
    mem_total=8 << 30, kernel_version="6.18.0-1-amd64", cap_bounding=OUR_CAPBND,
    rlimit_ceilings={"nofile": 20000, "memlock": 8 << 20, "nproc": 96365},
    memory_swappiness=True, blkio_weight=False,
)
V2_HOST = HostFacts(
    cgroup_version=2, ncpu=4, cpus_available="0-3", mems_available="0",
    mem_total=16 << 30, kernel_version="6.1.0", cap_bounding=caps_from_mask((1 << 41) - 1),
    memory_swappiness=False, blkio_weight=True, blkio_weight_device=True,
)


# A small profile in the containers-common format (as /usr/share/containers/seccomp.json)
SAMPLE_PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "defaultErrno": "ENOSYS",
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "comment": "",
         "includes": {}, "excludes": {}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "errno": "EPERM",
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["newcall"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.5"}},
        {"names": ["oldcall"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "6.5"}},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": None,
         "includes": {"caps": ["CAP_AUDIT_WRITE"]}},
    ],
}

REAL_PROFILE_PATH = Path("/usr/share/containers/seccomp.json")


# run a test once per host kind
each_host = pytest.mark.parametrize("host", [V1_HOST, V2_HOST], ids=["v1", "v2"])


def real_profile() -> dict:
    if not REAL_PROFILE_PATH.exists():
        pytest.skip("containers-common seccomp.json not installed")
    return json.loads(REAL_PROFILE_PATH.read_text())
