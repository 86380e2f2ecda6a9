"""`docker top` output filtering and `docker update` request rules (pure parts)."""

from __future__ import annotations

import pytest

from dockyard.cgroups import ContainerCgroup
from dockyard.engine.containers import operate as ops
from dockyard.errors import Conflict, InvalidParameter, SystemError_

PS_EF = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         100       1  0 10:01 ?        00:00:00 sh -c while :; do sleep 1; done
root         101     100  0 10:01 ?        00:00:00 sleep 1
"""

PS_M = """  PID TTY      STAT   TIME COMMAND
  100 ?        -      0:00 python app.py
    - -        Sl     0:00 -
    - -        Sl     0:00 -
  200 ?        -      0:00 other
    - -        S      0:00 -
"""


def test_top_keeps_only_container_pids_and_joins_the_command():
    out = ops.parse_ps_output(PS_EF, {100, 101})
    assert out["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert out["Processes"] == [
        ["root", "100", "1", "0", "10:01", "?", "00:00:00", "sh -c while :; do sleep 1; done"],
        ["root", "101", "100", "0", "10:01", "?", "00:00:00", "sleep 1"],
    ]


def test_top_thread_lines_follow_their_process():
    out = ops.parse_ps_output(PS_M, {100})
    assert [p[0] for p in out["Processes"]] == ["100", "-", "-"]


def test_top_needs_a_pid_column():
    with pytest.raises(SystemError_, match="Couldn't find PID field in ps output"):
        ops.parse_ps_output("USER COMMAND\nroot sh\n", {1})


def test_top_unicode_space_does_not_split_columns():
    out = ops.parse_ps_output("PID CMD\n5 a\u00a0b c\n", {5})
    assert out["Processes"] == [["5", "a\u00a0b c"]]


@pytest.mark.parametrize("args", ["-ef", "aux", "-o pid,comm", "-o pid=PID", "-eo pid,user"])
def test_ps_args_allowed(args):
    ops.validate_ps_args(args)


def test_bad_ps_args_are_the_clients_400():
    with pytest.raises(InvalidParameter, match='specifying "user=PID" is not allowed'):
        ops.validate_ps_args("-o user=PID")
    with pytest.raises(InvalidParameter) as e:
        ops.validate_ps_args("-ef\0x")
    assert e.value.message == 'invalid ps_args "-ef\\x00x": contains a NUL byte'


def test_read_cgroup_pids_walks_child_groups(tmp_path):
    (tmp_path / "child").mkdir()
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    (tmp_path / "child" / "cgroup.procs").write_text("12\n")
    cg = ContainerCgroup(1, {"pids": str(tmp_path)})
    assert sorted(ops.read_cgroup_pids(cg)) == [10, 11, 12]
    assert ops.read_cgroup_pids(ContainerCgroup(1, {})) == []


# ------------------------------------------------------------------ update body

def test_update_body_types_and_pids_unlimited():
    r = ops.parse_update_body({"Memory": 1 << 27, "PidsLimit": -1, "CpusetCpus": "0",
                               "RestartPolicy": {"Name": "always"}})
    assert r["Memory"] == 1 << 27 and r["PidsLimit"] == 0 and r["CpusetCpus"] == "0"
    assert r["RestartPolicy"] == {"Name": "always"}
    assert ops.parse_update_body(None) == {"RestartPolicy": {}}
    assert "PidsLimit" not in ops.parse_update_body({"PidsLimit": 5}, (1, 39))


@pytest.mark.parametrize("body", [{"Memory": "128m"}, {"CpusetCpus": 1}, [1],
                                  {"RestartPolicy": "always"}, {"Memory": True},
                                  {"PidsLimit": 2**70}, {"Memory": 2**63}])
def test_update_body_wrong_types_are_400(body):
    with pytest.raises(InvalidParameter, match="^invalid JSON: json: cannot unmarshal"):
        ops.parse_update_body(body)


def test_update_body_field_names_in_any_case():
    r = ops.parse_update_body({"memory": 1 << 27, "pidsLimit": 9,
                               "restartpolicy": {"name": "always"}})
    assert r == {"Memory": 1 << 27, "PidsLimit": 9, "RestartPolicy": {"Name": "always"}}


@pytest.mark.parametrize("body", [
    {"CgroupParent": "/x"}, {"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}]},
    {"OomKillDisable": True}, {"MemorySwappiness": 10}, {"Devices": [{"PathOnHost": "/a"}]},
    {"DeviceCgroupRules": ["c 1:3 rwm"]}, {"KernelMemoryTCP": 1 << 20}, {"CpuCount": 1}])
def test_update_refuses_what_only_create_applies(body):
    key = next(iter(body))
    with pytest.raises(InvalidParameter) as e:
        ops.parse_update_body(body)
    assert e.value.message == (f"{key} cannot be changed by an update: it only takes effect "
                               "when the container is created")


def test_update_accepts_zero_values_of_create_only_fields():
    # what the docker CLI sends: every field, zero where no flag was given
    body = {"CgroupParent": "", "Devices": None, "Ulimits": None, "OomKillDisable": None,
            "MemorySwappiness": None, "DeviceCgroupRules": None, "CpuCount": 0,
            "Memory": 1 << 27}
    assert ops.parse_update_body(body) == {"Memory": 1 << 27, "RestartPolicy": {}}
    assert "MemorySwappiness" not in ops.parse_update_body({"MemorySwappiness": -1})


# ------------------------------------------------------------------ merge rules

STORED = {"Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 0, "CpuQuota": 0,
          "CpuPeriod": 0, "PidsLimit": None, "RestartPolicy": {"Name": "no",
                                                               "MaximumRetryCount": 0}}


def test_merge_only_non_zero_values_change_the_stored_config():
    hc = ops.merge_update(STORED, {"Memory": 96 << 20, "CpuShares": 0, "PidsLimit": 40,
                                   "RestartPolicy": {}}, "c1")
    assert hc["Memory"] == 96 << 20 and hc["MemorySwap"] == 128 << 20
    assert hc["PidsLimit"] == 40 and "CpuShares" not in hc
    assert hc["RestartPolicy"]["Name"] == "no"
    assert STORED["Memory"] == 64 << 20      # the stored record is not touched


@pytest.mark.parametrize(("stored", "req", "text"), [
    ({"Memory": 64 << 20, "MemorySwap": 128 << 20}, {"MemorySwap": 1},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"Memory": 0, "MemorySwap": 0}, {"MemorySwap": 128 << 20},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
])
def test_merge_swap_the_kernel_would_refuse_is_a_400(stored, req, text):
    with pytest.raises(InvalidParameter) as e:
        ops.merge_update(stored, req, "c1")
    assert e.value.message == text
    ops.merge_update(stored, {"MemorySwap": -1}, "c1")


def test_merge_memory_above_stored_swap_is_a_conflict():
    with pytest.raises(Conflict) as e:
        ops.merge_update(STORED, {"Memory": 256 << 20}, "c1")
    assert e.value.message == ("Cannot update container c1: Memory limit should be smaller "
                               "than already set memoryswap limit, update the memoryswap at "
                               "the same time")
    hc = ops.merge_update(STORED, {"Memory": 256 << 20, "MemorySwap": 512 << 20}, "c1")
    assert hc["MemorySwap"] == 512 << 20


@pytest.mark.parametrize(("stored", "req", "text"), [
    ({"CpuPeriod": 50000}, {"NanoCpus": 10**9},
     "Nano CPUs cannot be updated as CPU Period has already been set"),
    ({"CpuQuota": 50000}, {"NanoCpus": 10**9},
     "Nano CPUs cannot be updated as CPU Quota has already been set"),
    ({"NanoCpus": 10**9}, {"CpuPeriod": 50000},
     "CPU Period cannot be updated as NanoCPUs has already been set"),
    ({"NanoCpus": 10**9}, {"CpuQuota": 50000},
     "CPU Quota cannot be updated as NanoCPUs has already been set"),
    ({"AutoRemove": True}, {"RestartPolicy": {"Name": "always"}},
     "Restart policy cannot be updated because AutoRemove is enabled for the container"),
])
def test_merge_conflicts(stored, req, text):
    with pytest.raises(Conflict, match=text):
        ops.merge_update(stored, req, "c1")


def test_merge_restart_policy_and_device_lists():
    hc = ops.merge_update(STORED, {"RestartPolicy": {"Name": "on-failure",
                                                     "MaximumRetryCount": 2},
                                   "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}]},
                          "c1")
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert hc["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1}]


# ------------------------------------------------------------------ runtime resources

def test_runtime_resources_send_only_what_the_request_sets():
    res = ops.runtime_resources({"Memory": 128 << 20, "MemorySwap": 256 << 20,
                                 "NanoCpus": 10**9, "PidsLimit": 40}, {})
    assert res == {"memory": {"limit": 128 << 20, "swap": 256 << 20},
                   "cpu": {"period": 100000, "quota": 100000},
                   "pids": {"limit": 40}}
    assert ops.runtime_resources({"PidsLimit": 0}, {}) == {"pids": {"limit": -1}}
    assert ops.runtime_resources({}, {}) == {}


def test_crun_cannot_lift_limits_itself():
    sent, direct = ops.split_crun_unlimited({"cpu": {"quota": -1, "period": 50000},
                                             "pids": {"limit": -1},
                                             "memory": {"limit": 1 << 27}})
    assert sent == {"memory": {"limit": 1 << 27}}
    assert direct == {"quota_period": 50000, "pids": True}
    sent, direct = ops.split_crun_unlimited({"cpu": {"quota": 5000, "shares": 512}})
    assert sent == {"cpu": {"quota": 5000, "shares": 512}} and direct == {}


def test_write_unlimited_v1_and_v2(tmp_path):
    cpu, pids, uni = tmp_path / "cpu", tmp_path / "pids", tmp_path / "uni"
    for d in (cpu, pids, uni):
        d.mkdir()
    ops.write_unlimited(ContainerCgroup(1, {"cpu": str(cpu), "pids": str(pids)}),
                        {"quota_period": 50000, "pids": True})
    assert (cpu / "cpu.cfs_quota_us").read_text() == "-1"
    assert (cpu / "cpu.cfs_period_us").read_text() == "50000"
    assert (pids / "pids.max").read_text() == "max"
    ops.write_unlimited(ContainerCgroup(2, {"": str(uni)}), {"quota_period": None, "pids": True})
    assert (uni / "cpu.max").read_text() == "max"
    assert (uni / "pids.max").read_text() == "max"
