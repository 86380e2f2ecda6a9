"""Security options: capabilities, privileged, seccomp, no-new-privileges,
masked and read-only paths, read-only rootfs, devices, users, init."""

from __future__ import annotations

from pathlib import Path

from hc_util import run_out, status_line

DEFAULT_CAPS = "00000000a80425fb"


def _host_bounding() -> str:
    return status_line(Path("/proc/self/status").read_text(), "CapBnd")


def test_default_capabilities_and_seccomp(daemon):
    st = run_out(daemon, "busybox", "cat", "/proc/self/status")
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert status_line(st, key) == DEFAULT_CAPS, key
    assert status_line(st, "Seccomp") == "2"
    assert status_line(st, "NoNewPrivs") == "0"


def test_cap_drop_all_add_chown(daemon):
    st = run_out(daemon, "--cap-drop", "ALL", "--cap-add", "CHOWN", "busybox", "cat",
                 "/proc/self/status")
    assert status_line(st, "CapEff") == "0000000000000001"
    # lower case and the CAP_ prefix are accepted too
    st = run_out(daemon, "--cap-drop", "all", "--cap-add", "cap_kill", "busybox", "cat",
                 "/proc/self/status")
    assert status_line(st, "CapEff") == "0000000000000020"


def test_cap_add_unlocks_seccomp_rules(daemon):
    # SYS_ADMIN lets the profile allow mount(2): a tmpfs mount works inside
    out = run_out(daemon, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                  "mkdir /m && mount -t tmpfs none /m && echo mounted")
    assert "mounted" in out


def test_privileged(daemon):
    out = run_out(daemon, "--privileged", "busybox", "sh", "-c",
                  "cat /proc/self/status; echo ===; ls /dev; echo ===; mount")
    st, devs, mounts = out.split("===\n")
    # every capability the host has, not more
    assert status_line(st, "CapEff") == _host_bounding()
    assert status_line(st, "Seccomp") == "0"
    host_devs = {p.name for p in Path("/dev").iterdir()
                 if p.is_char_device() or p.is_block_device()}
    assert {"vda", "kmsg", "mem"} & host_devs <= set(devs.split())
    sys_line = next(ln for ln in mounts.splitlines() if " on /sys type sysfs" in ln)
    assert "(rw," in sys_line
    assert "/proc/keys" not in mounts  # no masked paths


def test_privileged_with_runc(daemon):
    st = run_out(daemon, "--runtime", "runc", "--privileged", "busybox", "cat",
                 "/proc/self/status")
    assert status_line(st, "CapEff") == _host_bounding()


def test_seccomp_unconfined(daemon):
    st = run_out(daemon, "--security-opt", "seccomp=unconfined", "busybox", "cat",
                 "/proc/self/status")
    assert status_line(st, "Seccomp") == "0"


def test_seccomp_custom_profile(daemon, tmp_path):
    # The CLI reads the file and sends its content: deny mkdir only
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": '
                       '["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}')
    res = daemon.docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                        "mkdir", "/x")
    assert res.returncode != 0
    assert "Operation not permitted" in res.stderr.decode()


def test_no_new_privileges(daemon):
    for opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        st = run_out(daemon, "--security-opt", opt, "busybox", "cat", "/proc/self/status")
        assert status_line(st, "NoNewPrivs") == "1", opt
    st = run_out(daemon, "--security-opt", "no-new-privileges=false", "busybox", "cat",
                 "/proc/self/status")
    assert status_line(st, "NoNewPrivs") == "0"


def test_masked_and_readonly_paths(daemon):
    out = run_out(daemon, "busybox", "sh", "-c",
                  "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                  "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro; mount")
    size, firmware, ro, *mounts = out.splitlines()
    assert (size, firmware, ro) == ("0", "0", "ro")
    assert any(" on /proc/sys type proc (ro," in ln for ln in mounts)
    # systempaths=unconfined lifts both
    out = run_out(daemon, "--security-opt", "systempaths=unconfined", "busybox", "mount")
    assert "/proc/keys" not in out and " on /proc/sys " not in out


def test_read_only_rootfs_with_tmpfs(daemon):
    out = run_out(daemon, "--read-only", "--tmpfs", "/run", "busybox", "sh", "-c",
                  "touch /x 2>/dev/null || echo rootfs-ro; touch /run/y && echo run-rw; "
                  "mount | grep ' on /run '")
    lines = out.splitlines()
    assert lines[:2] == ["rootfs-ro", "run-rw"]
    assert "tmpfs" in lines[2] and "noexec" in lines[2]
    out = run_out(daemon, "--tmpfs", "/run:size=64m,mode=1777", "busybox", "sh", "-c",
                  "stat -c %a /run; df -k /run | tail -1")
    mode, df = out.splitlines()
    assert mode == "1777" and df.split()[1] == "65536"


def test_device_mapping(daemon):
    out = run_out(daemon, "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
                  "stat -c '%t:%T %F' /dev/mynull; echo hi > /dev/mynull && echo wrote")
    assert out.splitlines() == ["1:3 character special file", "wrote"]


def test_device_cgroup_denies_unlisted(daemon):
    # a node the device cgroup does not allow cannot be opened, even by root
    out = run_out(daemon, "--cap-add", "MKNOD", "busybox", "sh", "-c",
                  "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null 2>&1 || echo denied")
    assert out.strip() == "denied"


def test_user_by_name(daemon, app_image):
    assert run_out(daemon, "-u", "app", app_image, "id").strip() == \
        "uid=1000(app) gid=1000(app) groups=1000(app),1001(staff2)"
    assert run_out(daemon, "-u", "app:staff2", app_image, "id", "-g").strip() == "1001"
    # the kernel keeps supplementary groups sorted
    assert run_out(daemon, "-u", "1000", "--group-add", "10", app_image, "id", "-G"
                   ).split() == ["1000", "10", "1001"]
    # ids the image does not know are used as given
    assert run_out(daemon, "-u", "4242:4242", "busybox", "id", "-u").strip() == "4242"


def test_init_is_pid1_and_reaps_zombies(daemon):
    # orphans of a double fork are reparented to PID 1, which must reap them
    out = run_out(daemon, "--init", "busybox", "sh", "-c",
                  "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                  "for i in 1 2 3; do sh -c 'sleep 0.05 &'; done; sleep 0.5; "
                  "ps -o stat,comm")
    cmdline, *ps = out.splitlines()
    assert cmdline.startswith("/sbin/docker-init -- sh")
    assert not [ln for ln in ps[1:] if ln.split()[0].startswith("Z")], ps
