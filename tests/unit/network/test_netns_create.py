"""A container's network namespace is made in a thread of the daemon: a new
namespace, bound at its path, loopback up; the daemon stays where it was."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from dockyard.network.netns import create_netns, prepare_netns_dir, remove_netns
from dockyard.util.mount import is_mountpoint, umount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")


def in_ns(path: Path, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True,
                          text=True, check=True).stdout


def test_new_namespace_with_loopback_up(tmp_path: Path) -> None:
    d = tmp_path / "netns"
    prepare_netns_dir(d)
    try:
        mine = os.readlink("/proc/self/ns/net")
        paths = [d / f"c{i}" for i in range(3)]

        async def make() -> None:
            await asyncio.gather(*(create_netns(p) for p in paths))

        asyncio.run(make())
        seen = set()
        for p in paths:
            assert is_mountpoint(str(p))
            ns = in_ns(p, "readlink", "/proc/self/ns/net").strip()
            assert ns != mine
            seen.add(ns)
            links = in_ns(p, "ip", "-o", "link").splitlines()
            assert len(links) == 1 and "lo:" in links[0] and ",UP," in links[0]
            assert "127.0.0.1" in in_ns(p, "ip", "-o", "addr", "show", "lo")
        assert len(seen) == 3
        assert os.readlink("/proc/self/ns/net") == mine
        for p in paths:
            remove_netns(p)
            assert not p.exists()
    finally:
        umount(str(d))
