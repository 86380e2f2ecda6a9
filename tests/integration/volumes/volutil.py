"""Helpers of the volume tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

# What the image holds at /var/lib/app: a random payload (set-uid, owned by
# 1234:5678), a directory of 0750 owned by 42:43 with a file, a symlink and
# a hardlink; LISTING prints their checksums, owners, modes and links.
APP_SETUP = (
    "mkdir -p /var/lib/app/sub && head -c 3000000 /dev/urandom > /var/lib/app/payload && "
    "chown 1234:5678 /var/lib/app/payload && chmod 4711 /var/lib/app/payload && "
    "echo deep > /var/lib/app/sub/file && chown -R 42:43 /var/lib/app/sub && "
    "chmod 0750 /var/lib/app/sub && ln -s payload /var/lib/app/link && "
    "ln /var/lib/app/sub/file /var/lib/app/hard && chown 7:8 /var/lib/app && "
    "chmod 0711 /var/lib/app && "
    # symlinks for the destination rules: one to the root, one out of it
    "ln -s / /toroot && ln -s ../../../.. /var/escape && mkdir -p /var/real && "
    "ln -s /var/real /inside"
)
LISTING = ("cd /var/lib/app && sha256sum payload sub/file hard && "
           "stat -c '%n %u:%g %a %h' . payload sub sub/file && readlink link")


def volume_dirs(daemon) -> set[str]:  # type: ignore[no-untyped-def]
    d = daemon.data_root / "volumes"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def inspect(daemon, what: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(daemon.out("inspect", what))[0]


def traces_of(daemon, cid: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What a container may leave on the host, named by its ID."""
    found: list[str] = []
    if cid in daemon.out("ps", "-aq", "--no-trunc").split():
        found.append("container record")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if cid in line]
    if (daemon.exec_root / "netns" / cid).exists():
        found.append("netns")
    if (daemon.data_root / "containers" / cid).exists():
        found.append("container dir")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmd.split(b"\0")[0] and cid.encode() in cmd:
            found.append(f"conmon {pid}")
    return found
