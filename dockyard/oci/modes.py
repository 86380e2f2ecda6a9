"""Namespace mode strings of HostConfig (IpcMode, PidMode, NetworkMode, ...).

Semantics of moby api/types/container/hostconfig.go: `container:<ref>` joins
another container's namespace; `host` shares the host's; the rest are
private.  A network mode that is not default/bridge/host/none/container: is a
user-defined network name.
"""

from __future__ import annotations

CONTAINER_PREFIX = "container:"
IPC_MODES = ("", "none", "private", "shareable", "host")


def container_ref(mode: str | None) -> str | None:
    """`container:abc` -> "abc" (possibly ""), anything else -> None."""
    if mode and mode.startswith(CONTAINER_PREFIX):
        return mode[len(CONTAINER_PREFIX):]
    return None


def is_container(mode: str | None) -> bool:
    return container_ref(mode) is not None


def ipc_mode_valid(mode: str) -> bool:
    return mode in IPC_MODES or is_container(mode)


def pid_mode_valid(mode: str) -> bool:
    return mode in ("", "host") or bool(container_ref(mode))


def uts_mode_valid(mode: str) -> bool:
    return mode in ("", "host")


def userns_mode_valid(mode: str) -> bool:
    return mode in ("", "host")


def cgroupns_mode_valid(mode: str) -> bool:
    return mode in ("", "private", "host")



def network_is_private(mode: str) -> bool:
    """Docker's NetworkMode.IsPrivate: its own netns (bridge, none, user nets)."""
    return mode != "host" and not is_container(mode)


def network_is_user_defined(mode: str) -> bool:
    return mode not in ("", "default", "bridge", "host", "none") and not is_container(mode)
