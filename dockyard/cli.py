"""The `dockyard` command: daemon, version, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from dockyard import API_VERSION, __version__
from dockyard.config import DaemonConfig
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard")


def _daemon_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon", help="run the engine")
    _listener_options(p)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--exec-root", type=Path)
    p.add_argument("-p", "--pidfile", type=Path)
    p.add_argument("--default-runtime")
    p.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-G", "--group")
    p.add_argument("--emulation", action="store_true", default=None,
                   help="register qemu-user-static with binfmt_misc for foreign images")
    p.add_argument("--registry-mirror", action="append", dest="registry_mirrors",
                   metavar="URL", help="a Docker Hub mirror tried before Docker Hub; repeatable")
    p.add_argument("--insecure-registry", action="append", dest="insecure_registries",
                   metavar="HOST|CIDR",
                   help="a registry reached over plain http or unverified TLS; repeatable")
    p.add_argument("--max-concurrent-downloads", type=int, metavar="N",
                   help="layer downloads at once across all pulls (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, metavar="N",
                   help="layer uploads at once across all pushes (default 5)")


def _listener_options(p: argparse.ArgumentParser) -> None:
    """The options `daemon` and `doctor` share: hosts, TLS, seccomp, config file."""
    p.add_argument("--config-file", type=Path)
    p.add_argument("-H", "--host", action="append", dest="hosts",
                   help="socket to listen on (unix://PATH or tcp://HOST:PORT); repeatable")
    p.add_argument("--tls", nargs="?", const=True, type=_go_bool, metavar="BOOL",
                   help="use TLS on tcp:// hosts; implied by --tlsverify")
    p.add_argument("--tlsverify", nargs="?", const=True, type=_go_bool, metavar="BOOL",
                   help="use TLS and require client certificates signed by --tlscacert")
    p.add_argument("--tlscacert", help="trust client certificates signed only by this CA")
    p.add_argument("--tlscert", help="path to the server's TLS certificate")
    p.add_argument("--tlskey", help="path to the server's TLS key")
    p.add_argument("--tls-handshake-timeout", type=float, metavar="SECONDS",
                   help="drop a TLS client whose handshake takes longer (default 10)")
    p.add_argument("--seccomp-profile", metavar="builtin|unconfined|PATH",
                   help="containers' default seccomp profile (default: builtin, Docker's)")


def _go_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which dockerd's boolean flags use (--tls=false)."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def remove_stale_container_state(data_root: Path, exec_root: Path,
                                 cgroup_parent: str) -> list[str]:
    """What a stopped engine's containers that ended without it left: their
    empty cgroups and their log FIFOs' keepers.  A container still running
    keeps both."""
    from dockyard.engine.containers.store import stale_container_state
    from dockyard.runtime.conmon import stop_log_keeper
    from dockyard.runtime.logfifo import keeper_pid
    from dockyard.runtime.runtimes import remove_empty_cgroup

    removed = []
    for path, layout in stale_container_state(data_root, exec_root, cgroup_parent):
        if layout is None:
            continue
        keeper = keeper_pid(layout.log_keeper_pidfile, layout.log_path)
        asyncio.run(stop_log_keeper(layout))
        if keeper is not None:
            removed.append(f"log keeper {keeper}")
        removed += [f"cgroup {d}" for d in remove_empty_cgroup(path)]
    return removed


def build_config(ns: argparse.Namespace) -> DaemonConfig:
    cfg = DaemonConfig()
    explicit = {k for k in ("hosts", "data_root", "exec_root", "pidfile", "default_runtime",
                            "log_level", "debug", "group", "emulation", "registry_mirrors",
                            "insecure_registries", "max_concurrent_downloads",
                            "max_concurrent_uploads", "tls", "tlsverify", "tlscacert", "tlscert",
                            "tlskey", "tls_handshake_timeout", "seccomp_profile")
                if getattr(ns, k, None) is not None}
    for k in explicit:
        setattr(cfg, k, getattr(ns, k))
    default_file = Path("/etc/dockyard/daemon.json")
    cfg_file = ns.config_file or (default_file if default_file.exists() else None)
    if cfg_file is not None:
        cfg.config_file = cfg_file
        cfg.apply_file(cfg_file, explicit)
    if cfg.debug:
        cfg.log_level = "debug"
    cfg.check_registry_options()
    return cfg


async def run_daemon(cfg: DaemonConfig) -> int:
    from dockyard.api.app import app_for
    from dockyard.api.server import Limits
    from dockyard.engine.engine import Engine
    from dockyard.listeners import bind_tcp, plan_listeners, server_context

    t0 = time.perf_counter()
    tcp_sockets: dict[str, list[socket.socket]] = {}
    try:
        hosts, tls = plan_listeners(cfg)
        context = server_context(tls) if tls is not None else None
        for h in hosts:
            if h.proto == "tcp":
                tcp_sockets[h.url] = bind_tcp(h)
    except DockyardError as e:
        log.error("%s", e.message)
        for socks in tcp_sockets.values():
            for s in socks:
                s.close()
        return 1
    _become_subreaper()
    # SIGTERM or SIGINT from here on stops the daemon in order, also while
    # it is still starting or picking up its containers (it finishes that
    # step first): never the default action, which would leave the socket,
    # the pid file and half-restored state behind
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = Engine(cfg)
    try:
        await engine.start()
    except DockyardError as e:
        log.error("%s", e.message)
        await engine.shutdown()
        return 1
    app = app_for(engine.backends, Limits(tls_handshake_timeout=cfg.tls_handshake_timeout))
    # `_ping` is answered while the containers are picked up; the rest waits
    restored = asyncio.Event()
    app.hold_until(restored)
    sockets: list[str] = []
    listening: list[str] = []
    try:
        for h in hosts:
            if h.proto == "unix":
                await app.listen_unix(h.address, cfg.group)
                sockets.append(h.address)
                listening.append(h.url)
            else:
                bound = await app.listen_tcp(tcp_sockets[h.url], context)
                mode = tls.mode if tls is not None else "plain HTTP, no TLS"
                listening.append(f"{h.url} ({mode}; bound to "
                                 f"{', '.join(f'{a}:{p}' for a, p in bound)})")
    except (DockyardError, OSError) as e:
        log.error("cannot listen: %s", getattr(e, "message", e))
        await app.close()
        await engine.shutdown()
        _unlink_all(sockets)
        return 1
    if cfg.pidfile:
        cfg.pidfile.parent.mkdir(parents=True, exist_ok=True)
        cfg.pidfile.write_text(f"{os.getpid()}")
    # said before the containers are picked up: the sockets answer `_ping`
    # from here on, and whoever waits for that may read this line next
    log.info("dockyard %s (API %s) listening on %s after %.0f ms",
             __version__, API_VERSION, ", ".join(listening),
             (time.perf_counter() - t0) * 1000)
    try:
        await engine.restore_containers()
    except DockyardError as e:
        log.error("%s", e.message)
        await app.close()
        await engine.shutdown()
        _unlink_all(sockets)
        if cfg.pidfile:
            cfg.pidfile.unlink(missing_ok=True)
        return 1
    restored.set()
    log.info("ready in %.0f ms (containers picked up)", (time.perf_counter() - t0) * 1000)
    await stop.wait()
    log.info("shutting down")
    await app.close()
    await engine.shutdown()
    _unlink_all(sockets)
    if cfg.pidfile:
        try:
            cfg.pidfile.unlink()
        except OSError:
            pass
    return 0


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _become_subreaper() -> None:
    """Orphaned conmons reparent to us instead of PID 1, which on some hosts
    never reaps them; the monitor reaps each one when it exits."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("could not become a child subreaper: exited monitors may linger")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard", description="a Docker-API container engine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _daemon_parser(sub)
    sub.add_parser("version", help="print the version")
    d = sub.add_parser("doctor", help="report what this host supports, and what a daemon "
                       "with these options would use (seccomp profile, listeners, TLS)")
    d.add_argument("--json", action="store_true")
    d.add_argument("--exec-root", type=Path, default=Path("/run/dockyard"))
    _listener_options(d)
    k = sub.add_parser("certs", help="make a CA, a server and a client certificate for "
                       "TLS on tcp:// hosts (with openssl)")
    k.add_argument("--dir", type=Path, required=True, help="where to write them")
    k.add_argument("--host", action="append", dest="names", default=None,
                   help="a name or IP the server certificate is valid for; repeatable "
                        "(default: localhost, 127.0.0.1, ::1 and this host's name)")
    k.add_argument("--days", type=int, default=365)
    k.add_argument("--client-name", default="client")
    k.add_argument("--no-server", action="store_true", help="only a client certificate")
    k.add_argument("--no-client", action="store_true", help="only a server certificate")
    c = sub.add_parser("cleanup", help="remove the bridges, firewall rules and name server "
                       "an engine made on this host, and what its containers that ended "
                       "without it left (run it with the engine stopped)")
    c.add_argument("--data-root", type=Path, default=Path("/var/lib/dockyard"))
    c.add_argument("--exec-root", type=Path, default=Path("/run/dockyard"))
    c.add_argument("--cgroup-parent", default=DaemonConfig.cgroup_parent,
                   help="the engine's cgroup-parent, if it was not the default")
    ns = parser.parse_args(argv)
    if ns.cmd == "version":
        print(f"dockyard {__version__} (Docker Engine API {API_VERSION})")
        return 0
    if ns.cmd == "cleanup":
        from dockyard.engine.networks.store import remove_host_networking

        for what in asyncio.run(remove_host_networking(ns.data_root, ns.exec_root)):
            print(f"removed {what}")
        for what in remove_stale_container_state(ns.data_root, ns.exec_root,
                                                 ns.cgroup_parent):
            print(f"removed {what}")
        return 0
    if ns.cmd == "certs":
        from dockyard.certs import make_certs

        try:
            made = make_certs(ns.dir, ns.names or [], ns.days, ns.client_name,
                              server=not ns.no_server, client=not ns.no_client)
        except (DockyardError, OSError) as e:
            print(f"dockyard: {getattr(e, 'message', e)}", file=sys.stderr)
            return 1
        for name in made:
            print(ns.dir / name)
        return 0
    if ns.cmd == "doctor":
        from dockyard.doctor import run_doctor

        try:
            cfg = build_config(ns)
        except DockyardError as e:
            print(f"dockyard: {e.message}", file=sys.stderr)
            return 1
        return asyncio.run(run_doctor(ns.json, ns.exec_root, cfg))
    try:
        cfg = build_config(ns)
    except DockyardError as e:
        print(f"dockyard: {e.message}", file=sys.stderr)
        return 1
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # the registry client's transport logs every request (httpx, at INFO) and
    # every socket event (httpcore, at DEBUG): requests in debug mode only
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    if not cfg.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(run_daemon(cfg))


if __name__ == "__main__":
    sys.exit(main())
