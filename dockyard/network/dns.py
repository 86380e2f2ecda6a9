"""Container name resolution on user-defined networks, served by aardvark-dns.

One aardvark-dns process serves every network that resolves names.  Its
configuration is a directory with one file per network, named after the
network:

    <gateway>[,<gateway6>] [<upstream>,...]
    <container id> <ipv4>[,...] <ipv6>[,...] <name>[,<alias>...] [<resolver>,...]

It listens on each network's gateway (port 53) and answers a container only
with the names of containers on the networks it shares with it; other names
go to the upstream resolvers (the host's).  It daemonizes itself, writes
`aardvark.pid` into the directory and rereads the files on SIGHUP, and it
keeps serving while the engine restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.util.atomic import atomic_write

log = logging.getLogger("dockyard.dns")

AARDVARK_CANDIDATES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns")
PID_FILE = "aardvark.pid"
DNS_PORT = 53


@dataclass(frozen=True)
class DnsRecord:
    container_id: str
    ipv4: Sequence[str]
    ipv6: Sequence[str]
    names: Sequence[str]           # name, aliases, short id
    upstream: Sequence[str] = ()   # the container's own resolvers for other names


def _gateways(files: Iterable[str]) -> set[str]:
    """The addresses the configuration files name for the server to listen
    on (each file's first field: `<gateway>[,<gateway6>]`)."""
    out: set[str] = set()
    for text in files:
        first = text.split("\n", 1)[0].split()
        if first:
            out.update(ipaddress.ip_address(a).compressed for a in first[0].split(","))
    return out


def udp_listeners(port: int) -> set[str]:
    """The local addresses of the host's UDP sockets bound to `port`."""
    out: set[str] = set()
    for name, width in (("udp", 8), ("udp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            addr, _, hexport = local.partition(":")
            if int(hexport, 16) != port or len(addr) != width:
                continue
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, width, 8))
            out.add(ipaddress.ip_address(raw).compressed)
    return out


def find_aardvark() -> str | None:
    for path in AARDVARK_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("aardvark-dns")


def render_network(gateways: Sequence[str], upstream: Sequence[str],
                   records: Iterable[DnsRecord]) -> str:
    """One network's configuration file (pure).

    A name the file cannot hold (one with a space, a comma or a line break: an
    alias is any string) is left out: it resolves to nothing, as under Docker,
    and the other names and networks keep resolving."""
    head = ",".join(gateways)
    if upstream:
        head += " " + ",".join(upstream)
    lines = [head]
    for r in records:
        names = ",".join(dict.fromkeys(n.lower() for n in r.names if _writable(n)))
        line = f"{r.container_id} {','.join(r.ipv4)} {','.join(r.ipv6)} {names}"
        if r.upstream:
            line += " " + ",".join(r.upstream)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _writable(name: str) -> bool:
    return bool(name) and name.isprintable() and not any(ch in name for ch in " ,")


class DnsServer:
    def __init__(self, config_dir: Path, binary: str | None = None) -> None:
        self.dir = config_dir
        self.binary = binary if binary is not None else find_aardvark()
        self._applied: dict[str, str] | None = None   # what the running server read

    @property
    def available(self) -> bool:
        return self.binary is not None

    def _pid(self) -> int | None:
        try:
            pid = int((self.dir / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            return None
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        state = stat[stat.rfind(")") + 2:].split()[:1]
        if comm != "aardvark-dns":
            return None        # the pid was reused
        if state == ["Z"]:
            # a server that exited: it daemonized, so it is the daemon's
            # child (a subreaper) until reaped
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return None
        return pid

    async def update(self, networks: dict[str, str]) -> None:
        """Make the configuration exactly `networks` (name -> file text), then
        start the server or have it reread its files; with no network left,
        stop it."""
        if self.binary is None:
            return
        if networks == self._applied and (not networks or self._pid() is not None):
            # the same files for the same server (a container started on
            # a network without names): no rewrite, no reread
            return
        self._applied = None
        await asyncio.to_thread(self._write, networks)
        pid = self._pid()
        if not networks:
            await self.stop()
            self._applied = {}
            return
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            # it binds a new network's gateway after rereading: a container
            # started before that would find no name server there (IPv4
            # only: an IPv6 gateway may wait for duplicate address detection)
            await self._listening({g for g in _gateways(networks.values()) if ":" not in g})
            self._applied = dict(networks)
            return
        proc = await asyncio.create_subprocess_exec(
            self.binary, "--config", str(self.dir), "-p", str(DNS_PORT), "run",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()     # returns once the server is ready
        if proc.returncode != 0:
            log.error("aardvark-dns did not start: %s", err.decode(errors="replace").strip())
        else:
            self._applied = dict(networks)

    async def _listening(self, gateways: set[str], timeout: float = 2.0) -> None:
        """Wait until the server answers on port 53 of every gateway (it
        rebinds in its own time after SIGHUP), at most `timeout` seconds."""
        for _ in range(int(timeout / 0.01)):
            if gateways <= udp_listeners(DNS_PORT):
                return
            await asyncio.sleep(0.01)
        log.warning("aardvark-dns is not listening on %s yet",
                    ", ".join(sorted(gateways - udp_listeners(DNS_PORT))))

    def _write(self, networks: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in self.dir.iterdir():
            if path.name != PID_FILE and not path.name.startswith(".") and \
                    path.name not in networks:
                with contextlib.suppress(OSError):
                    path.unlink()
        for name, text in networks.items():
            atomic_write(self.dir / name, text.encode(), 0o600)

    async def stop(self) -> None:
        """Stop the server and wait until it is gone, so a network made
        right after starts a new one instead of signalling the old."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if self._pid() != pid:
                return
            await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
