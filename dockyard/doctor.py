"""`dockyard doctor`: what this host supports, found the way the engine finds it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from dockyard.config import DaemonConfig
from dockyard.errors import DockyardError
from dockyard.util.fstree import remove_quietly
from dockyard.util.mount import mount_overlay, umount


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else ""


def _check_overlay() -> tuple[bool, str]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-doctor-", dir="/var/tmp"))
    try:
        for d in ("lower", "upper", "work", "merged"):
            (base / d).mkdir()
        (base / "lower" / "f").write_text("x")
        mount_overlay([str(base / "lower")], str(base / "upper"), str(base / "work"),
                      str(base / "merged"))
        ok = (base / "merged" / "f").read_text() == "x"
        umount(str(base / "merged"))
        return ok, "overlay mounts on " + str(base.parent)
    except OSError as e:
        return False, str(e)
    finally:
        remove_quietly(base, unmount=True)


def _seccomp(cfg: DaemonConfig, kernel_has_seccomp: bool) -> dict[str, Any]:
    from dockyard.engine.host.seccomp import select_seccomp

    try:
        choice = select_seccomp(cfg.seccomp_profile, kernel_has_seccomp)
    except DockyardError as e:
        return {"profile": cfg.seccomp_profile or "builtin", "ok": False, "origin": e.message,
                "warnings": []}
    return {"profile": choice.name, "ok": not choice.warnings, "origin": choice.origin,
            "warnings": list(choice.warnings)}


def _cert_dates(path: str) -> str:
    out = _version(["openssl", "x509", "-in", path, "-noout", "-enddate"])
    return out.removeprefix("notAfter=")


def _listeners(cfg: DaemonConfig) -> dict[str, Any]:
    """The hosts a daemon with these options listens on, each with its TLS
    mode, and for unix sockets the file's owner and mode as they are now."""
    import grp
    import pwd
    import socket
    import stat

    from dockyard.listeners import parse_host, server_context, tls_settings

    out: dict[str, Any] = {"hosts": [], "tls": None, "error": ""}
    try:
        tls = tls_settings(cfg)
        if tls is not None:
            out["tls"] = {"mode": tls.mode, "cacert": tls.cacert, "cert": tls.cert,
                          "key": tls.key, "cert_expires": _cert_dates(tls.cert)}
            server_context(tls)
    except DockyardError as e:
        out["error"] = e.message
        tls = None
    for h in cfg.hosts:
        try:
            host = parse_host(h)
        except DockyardError as e:
            out["hosts"].append({"url": h, "error": e.message})
            continue
        entry: dict[str, Any] = {"url": host.url}
        if host.proto == "tcp":
            entry["mode"] = tls.mode if tls else (
                "plain HTTP (acknowledged with --tls=false)" if cfg.tls is False
                else "plain HTTP: refused at start without --tls=false")
        else:
            try:
                st = os.stat(host.address)
                try:
                    owner = pwd.getpwuid(st.st_uid).pw_name
                except KeyError:
                    owner = str(st.st_uid)
                try:
                    group = grp.getgrgid(st.st_gid).gr_name
                except KeyError:
                    group = str(st.st_gid)
                entry.update(owner=owner, group=group, mode=f"{stat.S_IMODE(st.st_mode):04o}",
                             is_socket=stat.S_ISSOCK(st.st_mode))
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(1)
                    entry["daemon_answers"] = sock.connect_ex(host.address) == 0
            except OSError:
                entry["exists"] = False
        out["hosts"].append(entry)
    return out


async def gather(exec_root: Path, cfg: DaemonConfig | None = None) -> dict[str, Any]:
    from dockyard.cgroups import detect
    from dockyard.engine.host.probe import probe_host
    from dockyard.oci.caps import ALL_CAPS
    from dockyard.runtime.runtimes import prepare_runtimes, runtime_version

    cg = detect.detect_cgroups()
    host = probe_host()
    tmp_exec = Path(tempfile.mkdtemp(prefix="doctor-", dir=str(exec_root.parent)
                                     if exec_root.parent.exists() else "/run"))
    try:
        rts = await prepare_runtimes(str(tmp_exec))
        runtimes = {}
        for name, rt in rts.runtimes.items():
            runtimes[name] = {"path": rt.path, "version": (await runtime_version(rt)).version,
                              "can_create": True,
                              "note": "crun runs create in a private mount namespace "
                                      "(hybrid cgroup host)" if rt.create_path else ""}
        for name, reason in rts.unusable.items():
            runtimes[name] = {"can_create": False, "reason": reason}
        default_rt = rts.default
    finally:
        remove_quietly(tmp_exec, unmount=True)
    ok_overlay, overlay_note = await asyncio.to_thread(_check_overlay)
    conmon = shutil.which("conmon")
    netavark = shutil.which("netavark") or ("/usr/lib/podman/netavark"
                                             if os.path.exists("/usr/lib/podman/netavark")
                                             else None)
    cfg = cfg or DaemonConfig()
    missing_caps = sorted(set(ALL_CAPS) - set(host.cap_bounding))
    qemu = sorted(p.name for p in Path("/usr/bin").glob("qemu-*-static"))
    return {
        "kernel": host.kernel_version,
        "architecture": host.arch,
        "cgroups": {
            "mode": cg.mode, "version": cg.version,
            "controllers": sorted(cg.controllers),
            "unified_controllers": sorted(cg.unified_controllers),
            "memory_limit": cg.memory_limit, "swap_limit": cg.swap_limit,
            "cpu_cfs_quota": cg.cpu_cfs_quota, "cpu_shares": cg.cpu_shares,
            "cpu_realtime": cg.cpu_realtime, "cpuset": cg.cpuset, "pids_limit": cg.pids_limit,
            "blkio_weight": cg.blkio_weight, "blkio_throttle": cg.blkio_throttle,
            "kernel_memory": cg.kernel_memory,
        },
        "runtimes": runtimes,
        "default_runtime": default_rt,
        "conmon": {"path": conmon, "version": _version([conmon, "--version"]) if conmon
                   else ""},
        "overlayfs": {"works": ok_overlay, "note": overlay_note},
        "netavark": {"path": netavark,
                     "version": _version([netavark, "--version"]) if netavark else ""},
        "seccomp_profile": _seccomp(cfg, host.seccomp),
        "listeners": _listeners(cfg),
        "init": shutil.which("catatonit") or shutil.which("tini"),
        "rlimit_ceilings": host.rlimit_ceilings,
        "missing_capabilities": missing_caps,
        "apparmor": host.apparmor, "selinux": host.selinux,
        "qemu_user_static": qemu,
    }


def _line(ok: bool | None, text: str) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "note"}[ok]
    return f"[{mark}] {text}"


def render(r: dict[str, Any]) -> str:
    cg = r["cgroups"]
    out = [f"kernel {r['kernel']} ({r['architecture']})",
           _line(True, f"cgroups: {cg['mode']} (Docker CgroupVersion {cg['version']}); "
                       f"controllers: {', '.join(cg['controllers'])}")]
    if cg["unified_controllers"] and cg["mode"] == "hybrid":
        out.append(_line(None, "cgroup2 mount holds only: "
                               + ", ".join(cg["unified_controllers"])))
    feats = [k for k in ("memory_limit", "swap_limit", "cpu_cfs_quota", "cpu_shares",
                         "cpu_realtime", "cpuset", "pids_limit", "blkio_weight",
                         "blkio_throttle", "kernel_memory")]
    out.append(_line(None, "limits: " + ", ".join(f"{k}={'yes' if cg[k] else 'no'}"
                                                  for k in feats)))
    for name, rt in sorted(r["runtimes"].items()):
        if rt.get("can_create"):
            extra = f" ({rt['note']})" if rt.get("note") else ""
            out.append(_line(True, f"runtime {name}: {rt['version']} at {rt['path']}, "
                                   f"creates containers{extra}"))
        else:
            out.append(_line(False, f"runtime {name}: cannot create containers: "
                                    f"{rt.get('reason')}"))
    out.append(_line(r["default_runtime"] is not None,
                     f"default runtime: {r['default_runtime'] or 'none'}"))
    out.append(_line(bool(r["conmon"]["path"]), f"conmon: {r['conmon']['version'] or 'missing'}"))
    out.append(_line(r["overlayfs"]["works"], f"overlayfs: {r['overlayfs']['note']}"))
    out.append(_line(bool(r["netavark"]["path"]),
                     f"netavark: {r['netavark']['version'] or 'missing'}"))
    sc = r["seccomp_profile"]
    out.append(_line(sc["ok"], f"seccomp profile: {sc['profile']}: {sc['origin']}"))
    out += [_line(None, f"seccomp: {w}") for w in sc["warnings"]]
    out += _render_listeners(r["listeners"])
    out.append(_line(bool(r["init"]), f"init for --init: {r['init'] or 'missing'}"))
    ceil = r["rlimit_ceilings"]
    out.append(_line(None, "rlimit hard ceilings: " + ", ".join(
        f"{k}={'unlimited' if v < 0 else v}" for k, v in sorted(ceil.items())
        if k in ("nofile", "nproc", "memlock", "core", "stack"))))
    if r["missing_capabilities"]:
        out.append(_line(None, "capabilities missing from the bounding set (never granted, "
                               "even to --privileged): " + ", ".join(r["missing_capabilities"])))
    out.append(_line(None, f"AppArmor: {'yes' if r['apparmor'] else 'no'}, "
                           f"SELinux: {'yes' if r['selinux'] else 'no'}"))
    qemu = [q.removeprefix("qemu-").removesuffix("-static") for q in r["qemu_user_static"]]
    out.append(_line(None, f"qemu-user-static: {len(qemu)} emulators ("
                           f"{', '.join(q for q in qemu if q in ('aarch64', 'arm', 'riscv64', 's390x', 'ppc64le'))}...)"
                     if qemu else "qemu-user-static: not installed"))
    return "\n".join(out)


def _render_listeners(ls: dict[str, Any]) -> list[str]:
    out = []
    if ls["error"]:
        out.append(_line(False, f"TLS: {ls['error']}"))
    elif ls["tls"]:
        t = ls["tls"]
        out.append(_line(True, f"TLS: {t['mode']}; CA {t['cacert']}, certificate {t['cert']} "
                               f"(expires {t['cert_expires'] or '?'}), key {t['key']}"))
    for h in ls["hosts"]:
        if "error" in h:
            out.append(_line(False, f"listener {h['url']}: {h['error']}"))
        elif h["url"].startswith("tcp://"):
            out.append(_line("refused" not in h["mode"], f"listener {h['url']}: {h['mode']}"))
        elif h.get("exists") is False:
            out.append(_line(None, f"listener {h['url']}: no socket yet (daemon not running)"))
        else:
            state = "a daemon answers" if h.get("daemon_answers") else "no daemon answers"
            out.append(_line(h.get("is_socket", False),
                             f"listener {h['url']}: socket owner {h['owner']}:{h['group']}, "
                             f"mode {h['mode']}, {state}"))
    return out


async def run_doctor(as_json: bool, exec_root: Path, cfg: DaemonConfig | None = None) -> int:
    r = await gather(exec_root, cfg)
    print(json.dumps(r, indent=2) if as_json else render(r))
    return 0 if r["default_runtime"] and r["overlayfs"]["works"] else 1
