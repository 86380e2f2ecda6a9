"""Foreign architectures: qemu-user-static through binfmt_misc.

The kernel runs a foreign ELF binary through an interpreter registered with
binfmt_misc.  With the F ("fix binary") flag the kernel opens the interpreter
once, at registration, and keeps the file; it then works inside any mount
namespace, so a container's rootfs needs no qemu of its own.

Where to register (the daemon option `emulation`, off by default):

* (a) the host's binfmt_misc (the init user namespace's instance), mounted on
  /proc/sys/fs/binfmt_misc if it is not yet.  This is what we do.
* (b) a binfmt_misc instance private to a user namespace (kernel >= 6.7).
  The kernel looks a binary's handler up in the caller's user namespace and
  then in its ancestors, so a registration made in a private user namespace
  is seen only by processes inside that namespace.  Our containers run in
  the host's user namespace (userns-remap is optional), so they would never
  see it; making every foreign-architecture container a user-namespaced one
  would change what root inside it may do (no host capabilities, remapped
  file ownership), which is a bigger change than emulation should bring.

So (a): it changes host state, which is why it happens only when the
operator turns the option on, and it is what `docker run --privileged
tonistiigi/binfmt --install all` does for dockerd users.  Registrations are
left in place at shutdown on purpose: containers outlive the daemon, and an
exec into a running arm64 container must keep working while the daemon
restarts.  Entries that already exist (for instance from systemd-binfmt) are
never replaced.

The entries come from the distribution's binfmt.d files for qemu (Debian's
qemu-user-static ships /usr/lib/binfmt.d/qemu-<arch>.conf in the exact
register format), so the magic/mask strings are the packagers', not ours.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dockyard.errors import InvalidParameter

log = logging.getLogger("dockyard.emulation")

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
CONF_DIRS = (Path("/usr/lib/binfmt.d"), Path("/usr/local/lib/binfmt.d"))

# qemu's target names -> the GOARCH/OCI names images carry.
QEMU_TO_OCI_ARCH = MappingProxyType({
    "aarch64": "arm64", "arm": "arm", "i386": "386", "x86_64": "amd64",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
    "mips64el": "mips64le", "mips64": "mips64", "mipsel": "mipsle", "mips": "mips",
    "loongarch64": "loong64",
})
# What the CPU runs without help: the host's own architecture plus the 32-bit
# one an amd64 or arm64 kernel usually also executes.
NATIVE_ALSO = MappingProxyType({"amd64": ("386",), "arm64": ()})


@dataclass(frozen=True)
class BinfmtEntry:
    """One binfmt_misc registration, as a binfmt.d line describes it."""

    name: str           # qemu-aarch64
    arch: str           # arm64 (OCI name)
    line: str           # ":name:type:offset:magic:mask:interpreter:flags"
    interpreter: str
    flags: str

    def with_fix_binary(self) -> BinfmtEntry:
        """The F flag makes the kernel open the interpreter now, so it need not
        exist inside a container's rootfs later."""
        if "F" in self.flags:
            return self
        flags = self.flags + "F"
        head = self.line[: len(self.line) - len(self.flags)]
        return BinfmtEntry(self.name, self.arch, head + flags, self.interpreter, flags)


def parse_binfmt_conf(text: str) -> list[BinfmtEntry]:
    """Parse binfmt.d lines (systemd-binfmt's format: the register string,
    any delimiter character, '#' or ';' comments)."""
    out: list[BinfmtEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        sep = line[0]
        fields = line[1:].split(sep)
        if len(fields) < 6:
            continue
        name, interpreter = fields[0], fields[5]
        flags = fields[6] if len(fields) > 6 else ""
        if not name.startswith("qemu-"):
            continue
        target = name.removeprefix("qemu-").removesuffix("-static")
        arch = QEMU_TO_OCI_ARCH.get(target)
        if arch is None:
            continue
        out.append(BinfmtEntry(name, arch, line, interpreter, flags))
    return out


def read_registered(binfmt_dir: Path = BINFMT_DIR) -> dict[str, dict[str, str]]:
    """The entries the kernel has now: name -> {'enabled', 'interpreter', 'flags'}."""
    out: dict[str, dict[str, str]] = {}
    try:
        names = os.listdir(binfmt_dir)
    except OSError:
        return out
    for name in names:
        if name in ("register", "status"):
            continue
        try:
            text = (binfmt_dir / name).read_text()
        except OSError:
            continue
        info: dict[str, str] = {}
        for ln in text.splitlines():
            if ln in ("enabled", "disabled"):
                info["enabled"] = "1" if ln == "enabled" else ""
            elif " " in ln:
                k, v = ln.split(" ", 1)
                info[k.rstrip(":")] = v.strip()
        out[name] = info
    return out


def is_binfmt_mounted(binfmt_dir: Path = BINFMT_DIR) -> bool:
    return (binfmt_dir / "register").exists()


def mount_binfmt(binfmt_dir: Path = BINFMT_DIR) -> None:
    from dockyard.util.mount import mount

    mount("binfmt_misc", str(binfmt_dir), "binfmt_misc", 0, None)


def platform_string(image_config: dict[str, Any]) -> str:
    parts = [image_config.get("os") or "linux", image_config.get("architecture") or ""]
    if image_config.get("variant"):
        parts.append(image_config["variant"])
    return "/".join(p for p in parts if p)


@dataclass
class Emulation:
    """Which architectures this host can run, and the setup that adds more."""

    enabled: bool
    host_arch: str
    binfmt_dir: Path = BINFMT_DIR
    conf_dirs: tuple[Path, ...] = CONF_DIRS
    # filled by setup()/refresh(): OCI arch -> binfmt entry name that runs it
    handlers: dict[str, str] = field(default_factory=dict)
    registered_by_us: list[str] = field(default_factory=list)
    problem: str = ""        # why emulation, though enabled, is not available

    # ----------------------------------------------------------- discovery
    def candidate_entries(self) -> list[BinfmtEntry]:
        """qemu entries the distribution describes whose interpreter is installed."""
        seen: dict[str, BinfmtEntry] = {}
        for d in self.conf_dirs:
            try:
                files = sorted(p for p in d.iterdir() if p.name.startswith("qemu-")
                               and p.suffix == ".conf")
            except OSError:
                continue
            for f in files:
                try:
                    entries = parse_binfmt_conf(f.read_text())
                except OSError:
                    continue
                for e in entries:
                    if e.arch in self.native_arches() or e.name in seen:
                        continue
                    if not os.path.exists(e.interpreter):
                        continue
                    seen[e.name] = e
        return list(seen.values())

    def native_arches(self) -> set[str]:
        return {self.host_arch, *NATIVE_ALSO.get(self.host_arch, ())}

    def refresh(self) -> None:
        """Learn what the kernel can run now (whoever registered it)."""
        handlers: dict[str, str] = {}
        for name, info in read_registered(self.binfmt_dir).items():
            if not info.get("enabled") or not name.startswith("qemu-"):
                continue
            arch = QEMU_TO_OCI_ARCH.get(name.removeprefix("qemu-").removesuffix("-static"))
            if arch is None or arch in self.native_arches():
                continue
            if "F" not in info.get("flags", ""):
                # Without F the interpreter path is looked up inside the
                # container at exec time, where it does not exist.
                log.warning("binfmt_misc entry %s lacks the F flag: %s containers cannot "
                            "use it", name, arch)
                continue
            handlers[arch] = name
        self.handlers = handlers

    # ----------------------------------------------------------- setup
    def setup(self) -> None:
        """Daemon start (in a thread): register qemu when the option is on."""
        if self.enabled:
            try:
                self._register_all()
            except OSError as e:
                self.problem = f"cannot set up binfmt_misc: {e.strerror or e}"
                log.error("emulation: %s", self.problem)
        self.refresh()
        if self.enabled and not self.handlers and not self.problem:
            self.problem = ("no qemu-user-static emulators found (install the "
                            "qemu-user-static package)")
            log.warning("emulation: %s", self.problem)
        elif self.handlers:
            log.info("emulation: can run %s through binfmt_misc",
                     ", ".join(sorted(self.handlers)))

    def _register_all(self) -> None:
        entries = self.candidate_entries()
        if not entries:
            return
        if not is_binfmt_mounted(self.binfmt_dir):
            mount_binfmt(self.binfmt_dir)
            log.info("emulation: mounted binfmt_misc on %s", self.binfmt_dir)
        present = read_registered(self.binfmt_dir)
        for e in entries:
            if e.name in present:
                continue
            try:
                with open(self.binfmt_dir / "register", "w") as f:
                    f.write(e.with_fix_binary().line)
            except OSError as err:
                if err.errno == errno.EEXIST:
                    continue
                log.warning("emulation: cannot register %s: %s", e.name, err.strerror or err)
                continue
            self.registered_by_us.append(e.name)
        if self.registered_by_us:
            log.info("emulation: registered %s with binfmt_misc (flag F)",
                     ", ".join(self.registered_by_us))

    # ----------------------------------------------------------- checks
    def can_run(self, arch: str) -> bool:
        return not arch or arch in self.native_arches() or arch in self.handlers

    def check_can_run(self, image_config: dict[str, Any]) -> None:
        """Container start: a clear error instead of the runtime's
        `exec format error` when nothing can run the image's binaries."""
        arch = image_config.get("architecture") or ""
        if self.can_run(arch):
            return
        # Someone may have registered an emulator since the daemon started.
        self.refresh()
        if arch in self.handlers:
            return
        want = platform_string(image_config)
        host = f"linux/{self.host_arch}"
        if not self.enabled:
            raise InvalidParameter(
                f"image platform {want} does not match the host platform {host} and "
                "emulation is not enabled (start the daemon with --emulation, or set "
                '"emulation": true in daemon.json, to run it with qemu-user-static)')
        reason = self.problem or f"no qemu-user-static emulator is registered for {arch}"
        raise InvalidParameter(
            f"image platform {want} does not match the host platform {host} and cannot be "
            f"emulated: {reason}")

    def info_warnings(self) -> list[str]:
        if self.enabled and self.problem:
            return [f"WARNING: emulation is enabled but unavailable: {self.problem}"]
        return []
