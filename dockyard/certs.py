"""`dockyard certs`: a CA and the certificates for TLS on tcp:// hosts.

Writes into one directory, in the layout Docker's documentation uses:
`ca.pem` and `ca-key.pem` (the CA; kept and reused when already there),
`server-cert.pem` and `server-key.pem` (for the daemon's `--tlscert` and
`--tlskey`), `cert.pem` and `key.pem` (a client certificate: point
DOCKER_CERT_PATH at the directory).  Keys are ECDSA P-256 and mode 0600.
The work is done by the `openssl` command, so the README can show the same
steps as plain openssl commands.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
from pathlib import Path

from dockyard.errors import InvalidParameter

KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise InvalidParameter(f"openssl {args[0]} failed: {res.stderr.strip()}")


def default_names() -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    host = socket.gethostname()
    if host and host not in names:
        names.append(host)
    return names


def _san(names: list[str]) -> str:
    parts = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            parts.append(f"IP:{n}")
        except ValueError:
            parts.append(f"DNS:{n}")
    return ",".join(parts)


def make_ca(out: Path, days: int) -> bool:
    """The CA, unless one is there; True when made now."""
    if (out / "ca.pem").exists() and (out / "ca-key.pem").exists():
        return False
    _openssl("req", "-x509", *KEY_ARGS, "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", str(days), "-subj", "/CN=dockyard CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=out)
    os.chmod(out / "ca-key.pem", 0o600)
    return True


def issue(out: Path, cert: str, key: str, common_name: str, days: int,
          server_names: list[str] | None = None) -> None:
    """A certificate signed by the CA in `out`: for a server when
    `server_names` are given (they become its subjectAltName), else for a
    client."""
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        t = Path(tmp)
        _openssl("req", *KEY_ARGS, "-keyout", str(t / "key.pem"), "-out", str(t / "req.csr"),
                 "-subj", f"/CN={common_name}", cwd=out)
        if server_names:
            ext = f"subjectAltName={_san(server_names)}\nextendedKeyUsage=serverAuth\n"
        else:
            ext = "extendedKeyUsage=clientAuth\n"
        (t / "ext.cnf").write_text(ext + "keyUsage=critical,digitalSignature,keyEncipherment\n")
        _openssl("x509", "-req", "-in", str(t / "req.csr"), "-CA", "ca.pem",
                 "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", str(t / "cert.pem"),
                 "-days", str(days), "-extfile", str(t / "ext.cnf"), cwd=out)
        os.chmod(t / "key.pem", 0o600)
        os.replace(t / "key.pem", out / key)
        os.replace(t / "cert.pem", out / cert)


def make_certs(out: Path, names: list[str], days: int = 365, client_name: str = "client",
               server: bool = True, client: bool = True) -> list[str]:
    """What `dockyard certs` writes; the file names, for the user."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = []
    if make_ca(out, days):
        made += ["ca.pem", "ca-key.pem"]
    if server:
        issue(out, "server-cert.pem", "server-key.pem", names[0] if names else "localhost",
              days, names or default_names())
        made += ["server-cert.pem", "server-key.pem"]
    if client:
        issue(out, "cert.pem", "key.pem", client_name, days)
        made += ["cert.pem", "key.pem"]
    return made
