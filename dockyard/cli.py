"""The `dockyard` command: daemon, version, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from dockyard import API_VERSION, __version__
from dockyard.config import DaemonConfig
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard")


def _daemon_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon", help="run the engine")
    p.add_argument("-H", "--host", action="append", dest="hosts",
                   help="socket to listen on (unix://PATH); repeatable")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--exec-root", type=Path)
    p.add_argument("-p", "--pidfile", type=Path)
    p.add_argument("--config-file", type=Path)
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


def build_config(ns: argparse.Namespace) -> DaemonConfig:
    cfg = DaemonConfig()
    explicit = {k for k in ("hosts", "data_root", "exec_root", "pidfile", "default_runtime",
                            "log_level", "debug", "group", "emulation", "registry_mirrors",
                            "insecure_registries", "max_concurrent_downloads",
                            "max_concurrent_uploads")
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
    from dockyard.engine.engine import Engine

    t0 = time.perf_counter()
    _become_subreaper()
    engine = Engine(cfg)
    try:
        await engine.start()
    except DockyardError as e:
        log.error("%s", e.message)
        await engine.shutdown()
        return 1
    app = app_for(engine.backends)
    sockets: list[str] = []
    try:
        for h in cfg.hosts:
            if h.startswith("unix://"):
                path = h[len("unix://"):]
                await app.listen_unix(path, cfg.group)
                sockets.append(path)
            elif h.startswith("fd://"):
                raise DockyardError("fd:// sockets are not supported")
            else:
                raise DockyardError(f"unsupported host {h!r}: only unix:// sockets for now")
    except (DockyardError, OSError) as e:
        log.error("cannot listen: %s", getattr(e, "message", e))
        await app.close()
        await engine.shutdown()
        return 1
    if cfg.pidfile:
        cfg.pidfile.parent.mkdir(parents=True, exist_ok=True)
        cfg.pidfile.write_text(f"{os.getpid()}")
    log.info("dockyard %s (API %s) listening on %s, ready in %.0f ms", __version__, API_VERSION,
             ", ".join(sockets), (time.perf_counter() - t0) * 1000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await app.close()
    await engine.shutdown()
    for s in sockets:
        try:
            os.unlink(s)
        except OSError:
            pass
    if cfg.pidfile:
        try:
            cfg.pidfile.unlink()
        except OSError:
            pass
    return 0


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
    d = sub.add_parser("doctor", help="report what this host supports")
    d.add_argument("--json", action="store_true")
    d.add_argument("--exec-root", type=Path, default=Path("/run/dockyard"))
    c = sub.add_parser("cleanup", help="remove the bridges, firewall rules and name server "
                       "an engine made on this host (run it with the engine stopped)")
    c.add_argument("--data-root", type=Path, default=Path("/var/lib/dockyard"))
    c.add_argument("--exec-root", type=Path, default=Path("/run/dockyard"))
    ns = parser.parse_args(argv)
    if ns.cmd == "version":
        print(f"dockyard {__version__} (Docker Engine API {API_VERSION})")
        return 0
    if ns.cmd == "cleanup":
        from dockyard.engine.networks.store import remove_host_networking

        for what in asyncio.run(remove_host_networking(ns.data_root, ns.exec_root)):
            print(f"removed {what}")
        return 0
    if ns.cmd == "doctor":
        from dockyard.doctor import run_doctor

        return asyncio.run(run_doctor(ns.json, ns.exec_root))
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
