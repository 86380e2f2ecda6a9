"""Fixtures for platform and user-namespace tests: the arm64 test image, and
a guard that leaves the host's binfmt_misc as the test found it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ARM64_SCRIPT = FIXTURES / "arm64-busybox.sh"
ARM64_TAG = "dockyard-test/busybox-arm64:latest"
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def _integration_conftest(config: pytest.Config) -> ModuleType:
    """tests/integration/conftest.py as pytest loaded it (two conftest.py
    files without packages cannot both be imported as `conftest`)."""
    want = str(Path(__file__).resolve().parents[1] / "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ModuleType) and getattr(plugin, "__file__", "") == want:
            return plugin
    raise RuntimeError("tests/integration/conftest.py is not loaded")


@pytest.fixture
def private_daemon(request: pytest.FixtureRequest) -> Iterator[Any]:
    """start(extra_args) -> a daemon of its own (own socket and data root),
    stopped and removed after the test."""
    it = _integration_conftest(request.config)
    started: list[tuple[Any, Path]] = []

    def start(extra_args: list[str], base_mode: int = 0o711) -> Any:
        base = Path(tempfile.mkdtemp(prefix="dockyard-plat-", dir="/var/tmp"))
        base.chmod(base_mode)      # 0o711: a userns-remap root must reach its containers
        try:
            d = it.start_daemon(base, extra_args)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        started.append((d, base))
        return d

    try:
        yield start
    finally:
        for d, base in started:
            it.stop_daemon(d)
            subprocess.run(["umount", "-l", str(d.exec_root / "netns")], check=False, capture_output=True)
            shutil.rmtree(d.exec_root, ignore_errors=True)
            shutil.rmtree(base, ignore_errors=True)


def import_arm64_image(d) -> str:  # type: ignore[no-untyped-def]
    """Build the arm64 busybox image (from Debian's package) into daemon d."""
    res = subprocess.run(["bash", str(ARM64_SCRIPT), "import", ARM64_TAG], env=d.env(), check=False,
                         capture_output=True, timeout=300)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace")
        if "could not download" in err:
            pytest.skip(f"no arm64 busybox-static package: {err.strip()}")
        raise AssertionError(f"building the arm64 image failed: {err}")
    return ARM64_TAG


@pytest.fixture(scope="session")
def arm64_image(daemon) -> str:  # type: ignore[no-untyped-def]
    """The arm64 image in the shared session daemon."""
    return import_arm64_image(daemon)


@pytest.fixture
def arm64_image_into() -> Any:
    """import_arm64_image, for private daemons."""
    return import_arm64_image


@pytest.fixture
def host_can_run_arm64() -> Any:
    return _host_can_run_arm64


def _host_can_run_arm64() -> bool:
    """An aarch64 handler with the F flag is registered (by anyone)."""
    entry = BINFMT / "qemu-aarch64"
    try:
        text = entry.read_text()
    except OSError:
        return False
    return text.startswith("enabled") and any(
        ln.startswith("flags:") and "F" in ln for ln in text.splitlines())


@dataclass
class BinfmtState:
    mounted: bool
    entries: frozenset[str]


def _binfmt_state() -> BinfmtState:
    mounted = (BINFMT / "register").exists()
    names = frozenset(n for n in os.listdir(BINFMT) if n not in ("register", "status")) \
        if mounted else frozenset()
    return BinfmtState(mounted, names)


@pytest.fixture
def binfmt_guard() -> Iterator[BinfmtState]:
    """Remove the registrations a test's daemon adds, and unmount binfmt_misc
    again if it was not mounted, so the host ends as it began."""
    before = _binfmt_state()
    try:
        yield before
    finally:
        after = _binfmt_state()
        for name in sorted(after.entries - before.entries):
            try:
                (BINFMT / name).write_text("-1")
            except OSError:
                pass
        if after.mounted and not before.mounted:
            subprocess.run(["umount", str(BINFMT)], check=False, capture_output=True)
