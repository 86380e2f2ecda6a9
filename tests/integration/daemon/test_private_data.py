"""Image and container data is root's alone: an unprivileged local user can
neither list nor read anything under the data root or the exec root, also
in a data root whose modes an older version left open (fixed at start)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

from tests.integration.conftest import Daemon, start_daemon, stop_daemon

# run as nobody: for each path on stdin, try to list (directories) or read
# (anything else); print what worked, marked when it showed the secret
PROBE = r"""
import os, sys
marker = sys.argv[1].encode()
for line in sys.stdin:
    p = line.rstrip("\n")
    try:
        if os.path.isdir(p):
            names = os.listdir(p)
            print("LISTED", p, "SECRET" if any(marker in n.encode() for n in names) else "")
        else:
            with open(p, "rb") as f:
                print("READ", p, "SECRET" if marker in f.read(1 << 16) else "")
    except OSError:
        pass
"""


def _all_paths(*roots: Path) -> list[str]:
    out = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            out.append(dirpath)
            out += [os.path.join(dirpath, n) for n in dirs + files
                    if not os.path.islink(os.path.join(dirpath, n))]
    return out


def _seen_by_nobody(d: Daemon, marker: str) -> list[str]:
    paths = _all_paths(d.data_root, d.exec_root)
    assert len(paths) > 50
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", PROBE, marker], input="\n".join(paths).encode(),
                         capture_output=True, timeout=120, check=True)
    return res.stdout.decode("latin-1").splitlines()


def _secret_layer(marker: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, mode in (("etc/shadow", 0o600), ("etc/motd", 0o644)):
            data = f"{marker}-{name}\n".encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_nobody_reads_images_containers_or_logs() -> None:
    marker = "SECRET-" + uuid.uuid4().hex
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    base.chmod(0o711)            # only the daemon's own modes stand in the way
    d = start_daemon(base)
    try:
        d.out("import", "--change", f"ENV API_TOKEN={marker}-token", "-", "secret:1",
              input=_secret_layer(marker))
        cid = d.out("run", "-d", "busybox", "sh", "-c",
                    f"echo {marker}-private > /private && chmod 600 /private && "
                    f"echo {marker}-log && sleep 600").strip()
        d.out("commit", cid, "secret:2")
        seen = _seen_by_nobody(d, marker)
        assert not seen, "\n".join(seen)[:3000]
        # a data root as an older version left it: open modes, fixed at start
        stop_daemon(d, cleanup=False)
        for p in ("images", "images/blobs", "images/blobs/sha256", "images/layers",
                  "containers", f"containers/{cid}"):
            (d.data_root / p).chmod(0o755)
        for blob in (d.data_root / "images/blobs/sha256").iterdir():
            blob.chmod(0o644)
        d.exec_root.chmod(0o755)
        assert any(line.endswith("SECRET") for line in _seen_by_nobody(d, marker))
        d = start_daemon(base)
        seen = _seen_by_nobody(d, marker)
        assert not seen, "\n".join(seen)[:3000]
        assert d.out("exec", cid, "cat", "/private").strip() == f"{marker}-private"
    finally:
        stop_daemon(d)
