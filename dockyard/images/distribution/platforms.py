"""Platforms as containerd's `platforms` package parses, normalises and
matches them (pure).

`parse_platform("linux/arm64")` gives `Platform("linux", "arm64", "v8")`:
the names are normalised (`x86_64` is `amd64`, `aarch64` is `arm64`, a bare
`arm` is `arm/v7`), and a specifier naming neither a known OS nor a known
architecture is refused in containerd's words, which clients match on
(`"foobar": unknown operating system or architecture: invalid argument`).

`select_manifests` orders an index's entries the way dockerd's puller
tries them: entries for the wanted OS and architecture whose variant the
wanted one can run, the exact variant first, then older ones.
"""

from __future__ import annotations

import platform as _host
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter

KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
    "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"})
KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
    "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
    "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"})
_SPECIFIER = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        """containerd's FormatAll: os/arch[/variant]."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def from_json(cls, obj: Any) -> Platform:
        """An index entry's `platform` or an image config's os/architecture."""
        if not isinstance(obj, dict):
            return cls("", "")
        def text(key: str) -> str:
            v = obj.get(key)
            return v if isinstance(v, str) else ""

        os_name, arch, variant = text("os"), text("architecture"), text("variant")
        arch, variant = normalize_arch(arch, variant)
        return cls(normalize_os(os_name), arch, variant)


def normalize_os(os_name: str) -> str:
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8", "v8.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def host_platform() -> Platform:
    m = _host.machine()
    arch, variant = normalize_arch(
        {"armv7l": "arm", "armv6l": "arm", "i686": "386", "i586": "386"}.get(m, m),
        {"armv7l": "v7", "armv6l": "v6"}.get(m, ""))
    return Platform("linux", arch, variant)


def parse_platform(spec: str) -> Platform:
    """containerd's platforms.Parse (missing parts are the host's; arm64's
    default variant v8 and arm's v7 are left out, as containerd does)."""
    if "*" in spec:
        raise InvalidParameter(f'"{spec}": wildcards not yet supported: invalid argument')
    parts = spec.split("/")
    for p in parts:
        if not _SPECIFIER.match(p):
            raise InvalidParameter(f'"{p}": invalid platform specifier: invalid argument')
    host = host_platform()
    if len(parts) == 1:
        one = parts[0].lower()
        if normalize_os(one) in KNOWN_OS:
            return Platform(normalize_os(one), host.architecture, host.variant)
        arch, variant = normalize_arch(one, "")
        if arch in KNOWN_ARCH:
            return Platform(host.os, arch, variant)
        raise InvalidParameter(
            f'"{spec}": unknown operating system or architecture: invalid argument')
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(normalize_os(parts[0]), arch, variant)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        return Platform(normalize_os(parts[0]), arch, variant)
    raise InvalidParameter(f'"{spec}": cannot parse platform specifier: invalid argument')


def _with_default_variant(p: Platform) -> Platform:
    """For comparing: arm64 is v8 and arm is v7 unless said otherwise."""
    default = {"arm64": "v8", "arm": "v7"}.get(p.architecture, "")
    if default and not p.variant:
        return Platform(p.os, p.architecture, default)
    return p


# what a variant can also run, best first (containerd's platformVector)
def _compatible_variants(p: Platform) -> list[str]:
    if p.architecture == "arm" and p.variant.startswith("v") and p.variant[1:].isdigit():
        return [f"v{n}" for n in range(int(p.variant[1:]), 4, -1)]
    if p.architecture == "amd64" and p.variant.startswith("v") and p.variant[1:].isdigit():
        return [f"v{n}" for n in range(int(p.variant[1:]), 1, -1)] + [""]
    if p.architecture == "arm64":
        return ["v8"]
    return [p.variant]


def platform_rank(want: Platform, have: Platform) -> int | None:
    """How well `have` serves `want`: 0 best; None when it cannot."""
    have = _with_default_variant(have)
    want = _with_default_variant(want)
    if have.os != want.os or have.architecture != want.architecture:
        return None
    variants = _compatible_variants(want)
    if have.variant in variants:
        return variants.index(have.variant)
    if not want.variant or not have.variant:
        return len(variants)
    return None


def select_manifests(entries: Sequence[dict[str, Any]], want: Platform
                     ) -> list[dict[str, Any]]:
    """The entries of an index that `want` can run, best first (stable)."""
    ranked = []
    for i, e in enumerate(entries):
        rank = platform_rank(want, Platform.from_json(e.get("platform") or {}))
        if rank is not None:
            ranked.append((rank, i, e))
    return [e for _r, _i, e in sorted(ranked, key=lambda t: (t[0], t[1]))]


def no_match_message(want: Platform) -> str:
    return f"no matching manifest for {want} in the manifest list entries"
