"""The embedded default image: busybox:latest from the host's busybox-static.

Lets `docker run busybox ...` work offline.  The layer tar is built
deterministically (fixed mtimes, sorted entries, uid/gid 0) so the same
busybox binary always gives the same diff_id and image ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from dockyard.images.archive import go_arch

BUSYBOX_PATH = Path("/bin/busybox")
# A fixed, plausible creation time: the image content, not the clock, decides the ID.
FIXED_CREATED = "2024-01-01T00:00:00Z"
FIXED_MTIME = 1704067200
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755,
        "root": 0o700, "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755,
        "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755,
        "var/spool/mail": 0o755, "var/www": 0o755}


def busybox_applets(binary: Path = BUSYBOX_PATH) -> list[str]:
    out = subprocess.run([str(binary), "--list-full"], capture_output=True, check=True,
                         timeout=10).stdout.decode()
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, FIXED_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def build_busybox_layer(out_path: Path, binary: Path = BUSYBOX_PATH,
                        applets: list[str] | None = None) -> str:
    """Write the layer tar; returns its diff_id."""
    applets = busybox_applets(binary) if applets is None else applets
    dirs = dict(DIRS)
    for a in applets:
        parent = a.rsplit("/", 1)[0] if "/" in a else ""
        while parent and parent not in dirs:
            dirs[parent] = 0o755
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
    h = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, f: io.BufferedWriter) -> None:
            self.f = f

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            h.update(b)
            return self.f.write(b)

    with open(out_path, "wb") as raw, tarfile.open(
            fileobj=_Hashing(raw), mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for d in sorted(dirs):
            tf.addfile(_info(d + "/", tarfile.DIRTYPE, dirs[d]))
        size = binary.stat().st_size
        with open(binary, "rb") as f:
            tf.addfile(_info("bin/busybox", tarfile.REGTYPE, 0o755, size), f)
        for a in applets:
            if a == "bin/busybox":
                continue
            ti = _info(a, tarfile.LNKTYPE, 0o755)
            ti.linkname = "bin/busybox"
            tf.addfile(ti)
        for name, text, mode in (("etc/group", GROUP, 0o644), ("etc/passwd", PASSWD, 0o644),
                                 ("etc/shadow", "root:*:10933:0:99999:7:::\n", 0o640)):
            data = text.encode()
            tf.addfile(_info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    return "sha256:" + h.hexdigest()


def busybox_config(diff_id: str) -> bytes:
    """The image config bytes (sorted keys, compact: stable across runs)."""
    cfg = {
        "architecture": go_arch(),
        "config": {"Cmd": ["sh"], "Env": [f"PATH={DEFAULT_PATH}"]},
        "created": FIXED_CREATED,
        "history": [
            {"created": FIXED_CREATED,
             "created_by": "dockyard: busybox from the host's busybox-static"},
            {"created": FIXED_CREATED, "created_by": 'CMD ["sh"]', "empty_layer": True}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
