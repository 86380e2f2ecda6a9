"""Docker/containers-common seccomp profiles -> OCI `linux.seccomp`.

Input format (moby/profiles, /usr/share/containers/seccomp.json): the OCI
fields (`defaultAction`, `defaultErrnoRet`, `architectures`, `flags`,
`listenerPath`...) plus `archMap` (`[{architecture, subArchitectures}]`) and
`syscalls` entries carrying `names` (or `name`), `action`, `args`,
`errnoRet`, and the filters `includes`/`excludes` with `caps`, `arches` and
`minKernel` ("<major>.<minor>").  Non-OCI keys (`comment`, `errno`,
`defaultErrno`, the filters) are dropped from the output.

Filtering (moby setupSeccomp): an entry is dropped when an excluded arch
matches, any excluded cap is in the bounding set, or the kernel is at least
the excluded minKernel; and kept only when every included arch/cap/minKernel
condition holds.

Syscalls newer than the profile: a profile written before a syscall existed
does not name it, so its default action (EPERM in Docker's) would answer it,
and programs that fall back on ENOSYS (glibc's clone3 -> clone, openat2,
statx...) would fail instead.  Under Docker, runc answers every syscall
numbered above the profile's newest one with ENOSYS; crun does not.  So the
translation adds that rule itself: every syscall of `NEWER_SYSCALLS` after
the newest the profile names gets ENOSYS.  Since Linux 5.1 new syscalls take
the same number on every architecture (424 onwards), so one ordered list
serves all of them.  A name the runtime's libseccomp does not know is
skipped by the runtime: such a syscall still gets the default action there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dockyard.errors import InvalidParameter

# GOARCH -> libseccomp's native arch name used by `arches` filters
_GO_TO_NATIVE = {
    "386": "x86", "amd64": "amd64", "arm": "arm", "arm64": "arm64",
    "loong64": "loongarch64", "mips64": "mips64", "mips64p32": "mips64n32",
    "mips64le": "mipsel64", "mips64p32le": "mips3l64n32", "mipsle": "mipsel",
    "ppc": "ppc", "ppc64": "ppc64", "ppc64le": "ppc64le", "riscv64": "riscv64",
    "s390": "s390", "s390x": "s390x",
}
_NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64", "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X",
}
_OCI_TOP_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "flags",
                 "listenerPath", "listenerMetadata")
_OCI_SYSCALL_KEYS = ("names", "action", "errnoRet", "args")
_KVER = re.compile(r"^(\d+)\.(\d+)")
ENOSYS = 38

# the syscalls of the numbering shared by all architectures, in order (424...)
NEWER_SYSCALLS = (
    "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_open",
    "clone3", "close_range", "openat2", "pidfd_getfd", "faccessat2", "process_madvise",
    "epoll_pwait2", "mount_setattr", "quotactl_fd", "landlock_create_ruleset",
    "landlock_add_rule", "landlock_restrict_self", "memfd_secret", "process_mrelease",
    "futex_waitv", "set_mempolicy_home_node", "cachestat", "fchmodat2", "map_shadow_stack",
    "futex_wake", "futex_wait", "futex_requeue", "statmount", "listmount",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "mseal", "setxattrat",
    "getxattrat", "listxattrat", "removexattrat", "open_tree_attr", "file_getattr",
    "file_setattr",
)


def parse_kernel_version(release: str) -> tuple[int, int] | None:
    """`6.18.0-1-amd64` -> (6, 18); None if unparsable."""
    m = _KVER.match(release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _min_kernel(value: str) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InvalidParameter(f'invalid kernel version: "{value}", expected "<kernel>.<major>"')
    ver = (int(parts[0]), int(parts[1]))
    if ver == (0, 0):
        raise InvalidParameter(
            f'invalid kernel version: "{value}", expected "<kernel>.<major>": '
            "version cannot be 0.0"
        )
    return ver


def _kernel_at_least(kernel: tuple[int, int] | None, want: tuple[int, int]) -> bool:
    # An unknown kernel is treated as new: the rules gated on minKernel
    # allow syscalls new kernels have, and old kernels are rare now.
    return kernel is None or kernel >= want


def build_seccomp(profile: dict, caps: Iterable[str], arch: str = "amd64",
                  kernel_version: str = "") -> dict | None:
    """The OCI `linux.seccomp` object for `profile`, or None for "no filter".

    `caps` is the container's bounding set, `arch` a GOARCH name.
    """
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    bounding = set(caps)
    native = _GO_TO_NATIVE.get(arch, arch)
    kernel = parse_kernel_version(kernel_version)
    out: dict = {k: profile[k] for k in _OCI_TOP_KEYS if profile.get(k) not in (None, [], "")}
    scmp = _NATIVE_TO_SCMP.get(native)
    if scmp:
        for entry in profile.get("archMap") or []:
            if entry.get("architecture") == scmp:
                out["architectures"] = [scmp, *(entry.get("subArchitectures") or [])]
                break
    syscalls = []
    for call in profile.get("syscalls") or []:
        names = call.get("names") or []
        if call.get("name"):
            if names:
                raise InvalidParameter(
                    "both 'name' and 'names' are specified in the seccomp profile, "
                    "use either 'name' or 'names'"
                )
            names = [call["name"]]
        if not _selected(call, bounding, native, kernel):
            continue
        rule = {"names": list(names), "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [_arg(a) for a in call["args"]]
        syscalls.append(rule)
    newer = syscalls_newer_than(profile)
    if newer and profile.get("defaultAction") not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        syscalls.append({"names": newer, "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    out["syscalls"] = syscalls
    return out


def syscalls_newer_than(profile: dict) -> list[str]:
    """The syscalls numbered after the newest one `profile` names (whatever
    its filters select), which it cannot have meant to refuse with EPERM."""
    named = {n for call in profile.get("syscalls") or []
             for n in (call.get("names") or []) + ([call["name"]] if call.get("name") else [])}
    last = max((i for i, n in enumerate(NEWER_SYSCALLS) if n in named), default=-1)
    return [n for n in NEWER_SYSCALLS[last + 1:] if n not in named]


def _arg(a: dict) -> dict:
    return {"index": a.get("index", 0), "value": a.get("value", 0),
            "valueTwo": a.get("valueTwo", 0), "op": a.get("op", "")}


def _selected(call: dict, bounding: set[str], native: str,
              kernel: tuple[int, int] | None) -> bool:
    excl = call.get("excludes") or {}
    if native in (excl.get("arches") or []):
        return False
    if any(c in bounding for c in excl.get("caps") or []):
        return False
    mk = _min_kernel(excl.get("minKernel") or "")
    if mk and _kernel_at_least(kernel, mk):
        return False
    incl = call.get("includes") or {}
    if incl.get("arches") and native not in incl["arches"]:
        return False
    if any(c not in bounding for c in incl.get("caps") or []):
        return False
    mk = _min_kernel(incl.get("minKernel") or "")
    return not (mk and not _kernel_at_least(kernel, mk))
