"""Registries for the registry tests, all on 127.0.0.1 and made by the tests:
Debian's `docker-registry` (distribution 2.8) with plain http, htpasswd
basic auth, TLS from a CA made here, or bearer tokens from `TokenServer`,
a small token server written for these tests (JWTs signed by openssl with a
key whose certificate the registry trusts).

Nothing here contacts another host; every process started is stopped by
the fixture that started it, and every file is under the test's tmp dir.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_ca(d: Path, ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `ips` and localhost it signed:
    (ca.crt, server.crt, server.key)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
    ext = d / "ext.cnf"
    sans = ",".join(f"IP:{ip}" for ip in ips)
    ext.write_text(f"subjectAltName={sans},DNS:localhost\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    def run(*a: str) -> None:
        subprocess.run(a, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=dockyard test CA", "-keyout", str(ca_key), "-out", str(ca_crt))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr))
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca_crt, crt, key


class NetNamespace:
    """A network namespace joined to the host by a veth pair on a /30 of
    198.18.0.0/15 (the benchmarking range, unused here): a registry in it has
    an address that is not loopback, so it is not insecure by default."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"dyreg-{tag}"
        self.host_if, self.peer_if = f"dyrg{tag}", f"dyrp{tag}"
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
        while True:
            third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
            self.gateway = f"198.18.{third}.{fourth + 1}"
            self.addr = f"198.18.{third}.{fourth + 2}"
            if f"198.18.{third}." not in routes:
                break

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def start(self) -> NetNamespace:
        self._ip("netns", "add", self.name)
        try:
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
            self._ip("link", "set", self.peer_if, "netns", self.name)
            self._ip("addr", "add", f"{self.gateway}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.name, "addr", "add", f"{self.addr}/30", "dev", self.peer_if)
            self._ip("-n", self.name, "link", "set", self.peer_if, "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@dataclass
class Registry:
    """One `docker-registry serve` on 127.0.0.1:<port> (or on an address of
    a NetNamespace, run inside its namespace)."""

    root: Path
    port: int = 0
    htpasswd: tuple[str, str] | None = None
    tls: tuple[Path, Path] | None = None        # (cert, key)
    token: TokenServer | None = None
    net: NetNamespace | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    @property
    def addr(self) -> str:
        return self.net.addr if self.net else "127.0.0.1"

    @property
    def host(self) -> str:
        return f"{self.addr}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "dockyard-tests"},
        }
        if self.htpasswd:
            user, password = self.htpasswd
            hashed = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                    capture_output=True, text=True).stdout.strip()
            (self.root / "htpasswd").write_text(hashed + "\n")
            cfg["auth"] = {"htpasswd": {"realm": "dockyard-tests",
                                        "path": str(self.root / "htpasswd")}}
        if self.token:
            cfg["auth"] = {"token": {"realm": self.token.realm, "service": self.token.service,
                                     "issuer": self.token.issuer,
                                     "rootcertbundle": str(self.token.cert)}}
        if self.tls:
            cfg["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        return cfg

    def start(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.log = self.root / "registry.log"
        path = self.root / "config.yml"
        path.write_text(json.dumps(self.config()))      # YAML is a superset of JSON
        prefix = ["ip", "netns", "exec", self.net.name] if self.net else []
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*prefix, REGISTRY, "serve", str(path)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {self.log.read_text()}")
            try:
                with socket.create_connection((self.addr, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"registry did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- direct access (plain http registries, without auth or with basic auth) --

    def _auth(self) -> dict[str, str]:
        if not self.htpasswd:
            return {}
        raw = f"{self.htpasswd[0]}:{self.htpasswd[1]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def _open(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={**self._auth(), **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self._open("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, status
        loc = headers["Location"]
        sep = "&" if "?" in loc else "?"
        target = urllib.parse.urljoin(self.url, loc) + f"{sep}digest={digest}"
        req = urllib.request.Request(target, data=data, method="PUT",
                                     headers={"Content-Type": "application/octet-stream",
                                              **self._auth()})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 201, r.status
        return digest

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        status, _h, out = self._open("PUT", f"/v2/{repo}/manifests/{ref}", body,
                                     {"Content-Type": media_type})
        assert status == 201, (status, out)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def get(self, path: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        return self._open("GET", path, headers=headers)


class TokenServer:
    """A token server for distribution's token auth: `GET /token` with
    optional basic credentials and scopes answers a JWT (RS256, signed by
    openssl) granting what the rules allow; `POST /token` takes a refresh
    token (an identity token from `docker login`)."""

    def __init__(self, root: Path, users: dict[str, str], public_prefix: str = "public/"
                 ) -> None:
        self.root = root
        self.users = users
        self.public_prefix = public_prefix
        self.service = "dockyard-test-registry"
        self.issuer = "dockyard-test-issuer"
        self.key = root / "token.key"
        self.cert = root / "token.crt"
        self.refresh: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=token signer", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return signing_input + "." + b64url(sig)

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            name, actions = parts[1], parts[2].split(",")
            if user is None:
                actions = [a for a in actions if a == "pull"] \
                    if name.startswith(self.public_prefix) else []
            access.append({"type": "repository", "name": name, "actions": actions})
        return access

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ts = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _issue(self, user: str | None, q: dict[str, list[str]]) -> None:
                scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
                now = int(time.time())
                claims = {"iss": ts.issuer, "sub": user or "", "aud": ts.service,
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": secrets.token_hex(8), "access": ts.grant(user, scopes)}
                token = ts.sign(claims)
                doc: dict[str, Any] = {"token": token, "access_token": token,
                                       "expires_in": 300}
                if user and q.get("offline_token", [""])[0] == "true":
                    rt = secrets.token_hex(16)
                    ts.refresh[rt] = user
                    doc["refresh_token"] = rt
                self._answer(200, doc)

            def do_GET(self) -> None:
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                ts.requests.append({"method": "GET", "query": q,
                                    "auth": self.headers.get("Authorization", "")})
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if ts.users.get(name) != password:
                        self._answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                       "message": "incorrect username or "
                                                       "password"}]})
                        return
                    user = name
                self._issue(user, q)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                ts.requests.append({"method": "POST", "query": form})
                user = ts.refresh.get(form.get("refresh_token", [""])[0])
                if form.get("grant_type", [""])[0] != "refresh_token" or user is None:
                    self._answer(401, {"error": "invalid_grant"})
                    return
                self._issue(user, form)

        return Handler


def image_layer(files: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    """An uncompressed layer tar with these regular files (mode 0644, or
    0755 for those named in `executable`; mtime 0)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 0
            ti.mode = 0o755 if name in executable else 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def busybox_layer() -> bytes:
    """The embedded busybox image's layer: the host's static busybox with a
    link for every applet, /etc/passwd and /etc/group."""
    import tempfile

    from dockyard.images.busybox import build_busybox_layer

    with tempfile.NamedTemporaryFile(dir="/var/tmp") as f:
        build_busybox_layer(Path(f.name))
        return Path(f.name).read_bytes()


def push_image(reg: Registry, repo: str, tag: str, layers: list[bytes], arch: str = "amd64",
               compress: str = "gzip", media: str = "docker", variant: str = "",
               cmd: list[str] | None = None) -> tuple[str, str]:
    """Push a handmade image (layers given uncompressed); (manifest digest,
    config digest)."""
    import gzip

    import zstandard

    diff_ids, descs = [], []
    for tar in layers:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        if compress == "gzip":
            blob = gzip.compress(tar, compresslevel=1, mtime=0)
            mt = ("application/vnd.docker.image.rootfs.diff.tar.gzip" if media == "docker"
                  else "application/vnd.oci.image.layer.v1.tar+gzip")
        elif compress == "zstd":
            blob = zstandard.ZstdCompressor().compress(tar)
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            blob, mt = tar, "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": mt, "size": len(blob), "digest": reg.put_blob(repo, blob)})
    config: dict[str, Any] = {"architecture": arch, "os": "linux",
                              "created": "2026-01-02T03:04:05Z",
                              "config": {"Cmd": cmd or ["sh"]},
                              "rootfs": {"type": "layers", "diff_ids": diff_ids},
                              "history": [{"created_by": "test"} for _ in layers]}
    if variant:
        config["variant"] = variant
    cfg = json.dumps(config).encode()
    cfg_digest = reg.put_blob(repo, cfg)
    mtype = ("application/vnd.docker.distribution.manifest.v2+json" if media == "docker"
             else "application/vnd.oci.image.manifest.v1+json")
    ctype = ("application/vnd.docker.container.image.v1+json" if media == "docker"
             else "application/vnd.oci.image.config.v1+json")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mtype,
                           "config": {"mediaType": ctype, "size": len(cfg),
                                      "digest": cfg_digest},
                           "layers": descs}).encode()
    return reg.put_manifest(repo, tag, manifest, mtype), cfg_digest


def push_index(reg: Registry, repo: str, tag: str, entries: list[tuple[str, dict[str, str]]],
               oci: bool = False) -> str:
    """An index over manifests already in `repo`: [(digest, platform)]."""
    mtype = ("application/vnd.oci.image.index.v1+json" if oci
             else "application/vnd.docker.distribution.manifest.list.v2+json")
    child = ("application/vnd.oci.image.manifest.v1+json" if oci
             else "application/vnd.docker.distribution.manifest.v2+json")
    manifests = []
    for digest, platform in entries:
        status, _h, body = reg.get(f"/v2/{repo}/manifests/{digest}", {"Accept": child})
        assert status == 200
        manifests.append({"mediaType": child, "size": len(body), "digest": digest,
                          "platform": platform})
    body = json.dumps({"schemaVersion": 2, "mediaType": mtype, "manifests": manifests}).encode()
    return reg.put_manifest(repo, tag, body, mtype)


def random_layers(total: int, count: int, seed: int = 0) -> list[bytes]:
    """`count` layers of random bytes adding up to about `total` bytes, a few
    files each."""
    import random

    rng = random.Random(seed)
    out = []
    per = total // count
    for i in range(count):
        files = {}
        left = per
        j = 0
        while left > 0:
            n = min(left, per // 3 + 1)
            files[f"data/l{i}/f{j}"] = rng.randbytes(n)
            left -= n
            j += 1
        out.append(image_layer(files))
    return out


def round_trip(d: Any, host: str, repo: str) -> None:
    """busybox tagged into `host/repo`, pushed, removed, pulled back (with the
    digest the push reported) and run, through the docker CLI of daemon `d`."""
    ref = f"{host}/{repo}:1"
    d.out("tag", "busybox", ref)
    out = d.out("push", ref)
    digest = next(x for x in out.splitlines() if x.startswith("1: digest:")).split()[2]
    d.out("rmi", ref)
    out = d.out("pull", ref)
    assert f"Digest: {digest}" in out
    assert d.out("run", "--rm", ref, "echo", "ok").strip() == "ok"
    d.out("rmi", ref)
