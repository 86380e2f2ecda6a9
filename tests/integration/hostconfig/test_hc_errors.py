"""Bad options fail with Docker's text and the CLI's exit code, and leave no
record, mount, netns, cgroup or conmon behind (create-time failures create
nothing; start-time ones are removed with `--rm`)."""

from __future__ import annotations

import pytest

CASES = [
    (("-m", "1m"), 125, "Minimum memory limit allowed is 6MB"),
    (("--memory-reservation", "1m"), 125, "Minimum memory reservation allowed is 6MB"),
    (("-m", "32m", "--memory-reservation", "64m"), 125,
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    (("-m", "64m", "--memory-swap", "32m"), 125,
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (("--memory-swap", "64m"), 125,
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    # the CLI checks this one itself (the daemon's text is tested through the API)
    (("--memory-swappiness", "101"), 125,
     "invalid value: 101. Valid memory swappiness range is 0-100"),
    (("--cpus", "1", "--cpu-quota", "50000"), 125,
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (("--cpus", "1", "--cpu-period", "50000"), 125,
     "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    (("--cpus", "64"), 125, "range of CPUs is from 0.01 to"),
    (("--cpu-period", "100"), 125,
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (("--cpu-quota", "100"), 125, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (("--cpuset-cpus", "0-63"), 125,
     "Requested CPUs are not available - requested 0-63, available: "),
    (("--cpuset-mems", "5"), 125, "Requested memory nodes are not available - requested 5"),
    (("--blkio-weight", "5"), 125, "Range of blkio weight is from 10 to 1000"),
    (("--cap-add", "NOT_A_CAP"), 125, 'invalid CapAdd: unknown capability: "CAP_NOT_A_CAP"'),
    (("--cap-drop", "BOGUS"), 125, 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
    (("--oom-score-adj", "2000"), 125,
     "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
    (("--sysctl", "vm.swappiness=10"), 125, "sysctl 'vm.swappiness=10' is not allowed"),
    (("--ipc", "bogus"), 125, "invalid IPC mode"),
    (("--uts", "host", "-h", "foo"), 125, "conflicting options: hostname and the UTS mode"),
    (("--security-opt", "bogus"), 125, 'Invalid --security-opt: "bogus"'),
    (("--ulimit", "nofile=1024:99999999"), 125, "nofile"),
    (("--shm-size", "-1"), 125, ""),
    # start-time failures: created, then removed again because of --rm
    (("-u", "nosuchuser"), 125,
     "unable to find user nosuchuser: no matching entries in passwd file"),
    (("--device", "/dev/nonexistent"), 127,
     'error gathering device information while adding custom device "/dev/nonexistent"'),
    (("--device-read-bps", "/dev/null:1mb"), 125, "/dev/null is not a block device"),
]


@pytest.mark.parametrize(("args", "code", "text"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_option_fails_cleanly(failed_run, args, code, text):
    got_code, err = failed_run(*args)
    assert text in err
    assert got_code == code, err


def test_start_time_failure_is_seen_and_cleaned(failed_run):
    """The leftover check is not vacuous: a start-time failure did create a
    container (found through its events), and it is gone."""
    failed_run("-u", "nosuchuser")
    assert len(failed_run.last_ids) == 1


def test_blkio_weight_without_kernel_support_is_an_error(client, failed_run):
    if "WARNING: No blkio weight support" not in (client.info().get("Warnings") or []):
        pytest.skip("this kernel supports blkio weight")
    code, err = failed_run("--blkio-weight", "300")
    assert code == 125
    assert "Your kernel does not support Block I/O weight" in err


def test_ulimit_above_host_ceiling_names_limit_and_ceiling(failed_run):
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no nofile ceiling on this host")
    _code, err = failed_run("--ulimit", f"nofile=1024:{hard + 1}")
    assert "nofile" in err and str(hard) in err


def test_unknown_container_in_mode(failed_run):
    for mode in ("--ipc", "--pid", "--network"):
        code, err = failed_run(mode, "container:nosuchcontainer")
        assert code == 125
        # as dockerd: IPC and PID are refused at create (a 400, so the CLI
        # does not try to pull the image); the network is looked up at start
        assert not failed_run.last_ids or mode == "--network"
        assert "No such container: nosuchcontainer" in err, (mode, err)
        assert "Unable to find image" not in err


def test_mode_container_not_running(daemon, name, failed_run):
    daemon.out("create", "--name", name, "busybox", "true")
    try:
        for mode in ("--pid", "--network"):
            code, err = failed_run(mode, f"container:{name}")
            assert code != 0 and "is not running" in err, (mode, err)
    finally:
        daemon.docker("rm", "-f", name)


API_CASES = [
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"Sysctls": {"vm.swappiness": "10"}}, "vm.swappiness"),
    ({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
    ({"SecurityOpt": ["apparmor=foo"]}, "AppArmor is not enabled on this host"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"CpuShares": -1}, "invalid CPU shares (-1): value must be a positive integer"),
    ({"IpcMode": "bogus"}, "invalid IPC mode"),
]


@pytest.mark.parametrize(("hc", "text"), API_CASES, ids=[str(c[0]) for c in API_CASES])
def test_daemon_texts_through_the_api(client, hc, text):
    """What the CLI does not pre-check: the daemon's own 400s (as docker-py sees them)."""
    import docker.errors

    before = len(client.api.containers(all=True))
    with pytest.raises(docker.errors.APIError) as e:
        client.api.create_container("busybox", "true", host_config=hc)
    assert e.value.status_code == 400
    assert text in str(e.value.explanation)
    assert len(client.api.containers(all=True)) == before


def test_cpu_rt_runtime_without_parent_budget(failed_run):
    from pathlib import Path

    budget = Path("/sys/fs/cgroup/cpu/dockyard/cpu.rt_runtime_us")
    if not Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists():
        pytest.skip("no v1 RT group scheduling here")
    if budget.exists() and int(budget.read_text()) > 0:
        pytest.skip("the cgroup parent has a real-time budget")
    code, err = failed_run("--cpu-rt-runtime", "1000")
    assert code == 125
    assert "cpu real-time runtime 1000us is more than the cgroup parent /dockyard grants" in err
