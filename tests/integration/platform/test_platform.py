"""Issue 4, Platforms: `--platform` matching, and foreign architectures
through qemu-user-static registered by the daemon's `emulation` option."""

from __future__ import annotations

from pathlib import Path

import pytest

QEMU_AARCH64 = Path("/usr/bin/qemu-aarch64-static")


def test_matching_platform_runs(daemon):
    res = daemon.docker("run", "--rm", "--platform", "linux/amd64", "busybox", "true")
    assert res.returncode == 0, res.stderr


def test_mismatched_platform_is_a_clear_error(daemon):
    """Without a pull (`--pull never`: a pull of busybox would go to Docker
    Hub), the create names the mismatch."""
    res = daemon.docker("run", "--rm", "--pull", "never", "--platform", "linux/arm64",
                        "busybox", "true")
    err = res.stderr.decode()
    assert res.returncode == 125
    assert ("image with reference busybox was found but does not match the specified "
            "platform: wanted linux/arm64, actual: linux/amd64") in err
    assert "Image is up to date" not in err + res.stdout.decode()


def test_create_with_mismatched_platform_is_404(client):
    import docker

    with pytest.raises(docker.errors.ImageNotFound):
        client.api.create_container("busybox", "true", platform="linux/arm64")


def test_arm64_image_has_its_platform(daemon, arm64_image):
    out = daemon.out("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", arm64_image)
    assert out.strip() == "linux/arm64"


def test_foreign_image_without_emulation_is_a_clear_error(daemon, arm64_image,
                                                        host_can_run_arm64):
    if host_can_run_arm64():
        pytest.skip("the host already has an aarch64 binfmt_misc handler")
    before = set(daemon.out("ps", "-aq").split())
    res = daemon.docker("run", "--rm", "--platform", "linux/arm64", arm64_image, "uname", "-m")
    err = res.stderr.decode()
    assert res.returncode == 125
    assert ("image platform linux/arm64 does not match the host platform linux/amd64 and "
            "emulation is not enabled (start the daemon with --emulation") in err
    assert "exec format error" not in err.lower()
    assert set(daemon.out("ps", "-aq").split()) == before  # --rm: nothing left behind
    # without --rm the container stays, with the reason in its state
    cid = daemon.out("create", arm64_image, "uname", "-m").strip()
    res = daemon.docker("start", cid)
    assert res.returncode != 0
    assert "emulation is not enabled" in daemon.out("inspect", "--format", "{{.State.Error}}",
                                                     cid)
    daemon.docker("rm", "-f", cid)


@pytest.mark.skipif(not QEMU_AARCH64.exists(), reason="qemu-user-static is not installed")
def test_emulation_runs_arm64(private_daemon, binfmt_guard, arm64_image_into):
    d = private_daemon(["--emulation"])
    image = arm64_image_into(d)
    res = d.docker("run", "--rm", "--platform", "linux/arm64", image, "uname", "-m")
    assert res.returncode == 0, res.stderr.decode() + d.log()
    assert res.stdout == b"aarch64\n"
    # without --platform too, and exec into a running arm64 container
    cid = d.out("run", "-d", image, "sleep", "60").strip()
    assert d.out("exec", cid, "uname", "-m") == "aarch64\n"
    d.docker("rm", "-f", cid)
    # the F flag: no interpreter inside the container, yet it runs
    res = d.docker("run", "--rm", image, "sh", "-c",
                   "test -e /usr/bin/qemu-aarch64-static || echo no-qemu-inside")
    assert res.stdout == b"no-qemu-inside\n"
    flags = [ln for ln in Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").read_text().splitlines()
             if ln.startswith("flags:")]
    assert flags and "F" in flags[0]


def test_emulation_via_daemon_json(private_daemon, binfmt_guard, arm64_image_into, tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"emulation": true}')
    d = private_daemon(["--config-file", str(cfg)])
    if not QEMU_AARCH64.exists():
        pytest.skip("qemu-user-static is not installed")
    image = arm64_image_into(d)
    assert d.out("run", "--rm", image, "uname", "-m") == "aarch64\n"
