"""Linux capabilities as Docker computes them for a container.

Rules (moby daemon/pkg/oci/caps): names are case-insensitive, `CAP_` is
optional, `ALL` means every capability the daemon itself holds.  A name the
kernel headers do not know is `unknown capability: "CAP_X"`; a known one the
host's bounding set lacks is `capability not supported by your kernel or not
available in the current environment: "CAP_X"`.  Privileged containers get
every capability of the host bounding set, never more (a runtime fails to
apply caps the daemon does not have).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dockyard.errors import InvalidParameter

# Kernel numbering order (bit n of CapBnd is ALL_CAPS[n]).
ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Docker's default set, in Docker's order (the order shows in the spec).
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL = "ALL"


def caps_from_mask(mask: int) -> frozenset[str]:
    """Names for a CapBnd-style bit mask (`int("000001fffeffffff", 16)`)."""
    return frozenset(c for i, c in enumerate(ALL_CAPS) if mask >> i & 1)


def host_caps(bounding: frozenset[str]) -> list[str]:
    """What `ALL` means here: the host's bounding set in kernel order.

    An empty set means "not detected"; then every known capability counts.
    """
    if not bounding:
        return list(ALL_CAPS)
    return [c for c in ALL_CAPS if c in bounding]


def normalize_caps(names: Iterable[str] | None, bounding: frozenset[str] = frozenset()) -> list[str]:
    """Upper-case, add `CAP_`, keep `ALL`; raise on unknown or unavailable names."""
    out: list[str] = []
    for raw in names or ():
        c = raw.upper()
        if c == ALL:
            out.append(c)
            continue
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in ALL_CAPS:
            raise InvalidParameter(f'unknown capability: "{c}"')
        if bounding and c not in bounding:
            raise InvalidParameter(
                "capability not supported by your kernel or not available in the "
                f'current environment: "{c}"'
            )
        out.append(c)
    return out


def validate_cap_lists(cap_add: Sequence[str] | None, cap_drop: Sequence[str] | None,
                       bounding: frozenset[str] = frozenset()) -> None:
    """Docker's create-time check, with its `invalid CapAdd: ` prefixes."""
    for label, names in (("CapAdd", cap_add), ("CapDrop", cap_drop)):
        try:
            normalize_caps(names, bounding)
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid {label}: {e.message}") from None


def apply_cap_add_drop(defaults: Sequence[str], add: Sequence[str] | None,
                       drop: Sequence[str] | None,
                       bounding: frozenset[str] = frozenset()) -> list[str]:
    """The container's capability set from defaults, CapAdd and CapDrop.

    `ALL` in add: every host capability minus the dropped ones.  `ALL` in
    drop: only the added ones.  Otherwise defaults minus drop, plus add.
    The result never holds a capability the host lacks, nor duplicates.
    """
    everything = host_caps(bounding)
    if not add and not drop:
        caps = list(defaults)
    else:
        cap_drop = normalize_caps(drop, bounding)
        cap_add = normalize_caps(add, bounding)
        if ALL in cap_add:
            caps = [c for c in everything if c not in cap_drop]
        elif ALL in cap_drop:
            caps = list(cap_add)
        else:
            caps = [c for c in defaults if c not in cap_drop] + cap_add
    seen: set[str] = set()
    result: list[str] = []
    for c in caps:
        if c in seen or (bounding and c not in bounding):
            continue
        seen.add(c)
        result.append(c)
    return result


def container_caps(privileged: bool, add: Sequence[str] | None, drop: Sequence[str] | None,
                   bounding: frozenset[str] = frozenset()) -> list[str]:
    """Capabilities for a container: all the host has when privileged."""
    if privileged:
        return host_caps(bounding)
    return apply_cap_add_drop(DEFAULT_CAPS, add, drop, bounding)
