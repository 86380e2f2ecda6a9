"""Helpers to build tarballs and image archives inside tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, mode: int = 0o644,
          linkname: str = "", mtime: int = 1_600_000_000, uid: int = 0, gid: int = 0,
          pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname, ti.mtime, ti.uid, ti.gid = kind, mode, linkname, mtime, uid, gid
    if pax:
        ti.pax_headers = dict(pax)
    if kind == tarfile.REGTYPE and data is None:
        data = b""
    return ti, data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(diff_ids: list[str], **extra: Any) -> bytes:
    cfg = {"architecture": "amd64", "os": "linux", "created": "2023-05-01T10:00:00Z",
           "config": {"Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids},
           "history": [{"created": "2023-05-01T10:00:00Z", "created_by": f"layer {i}"}
                       for i in range(len(diff_ids))], **extra}
    return json.dumps(cfg).encode()


def legacy_archive(layers: list[bytes], tags: list[str], gzip_layers: bool = False,
                   config: bytes | None = None) -> bytes:
    """docker save as dockerd <25 writes it: <id>.json, <v1id>/layer.tar, manifest.json."""
    diff_ids = [sha(layer) for layer in layers]
    cfg = config or image_config(diff_ids)
    cfg_name = sha(cfg)[7:] + ".json"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [entry(cfg_name, data=cfg)]
    paths = []
    for i, layer in enumerate(layers):
        d = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
        members.append(entry(d + "/", tarfile.DIRTYPE, mode=0o755))
        members.append(entry(d + "/VERSION", data=b"1.0"))
        members.append(entry(d + "/layer.tar", data=gzip.compress(layer, mtime=0)
                             if gzip_layers else layer))
        paths.append(d + "/layer.tar")
    manifest = [{"Config": cfg_name, "RepoTags": tags, "Layers": paths}]
    members.append(entry("manifest.json", data=json.dumps(manifest).encode()))
    return tar_bytes(members)


def oci_archive(layers: list[bytes], name: str | None, gzip_layers: bool = True,
                with_manifest_json: bool = False) -> bytes:
    """A plain OCI image layout (optionally with Docker 25+'s manifest.json)."""
    diff_ids = [sha(layer) for layer in layers]
    cfg = image_config(diff_ids)
    blobs: dict[str, bytes] = {sha(cfg): cfg}
    descs = []
    for layer in layers:
        data = gzip.compress(layer, mtime=0) if gzip_layers else layer
        blobs[sha(data)] = data
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                      if gzip_layers else "application/vnd.oci.image.layer.v1.tar",
                      "digest": sha(data), "size": len(data)})
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(cfg), "size": len(cfg)},
                           "layers": descs}).encode()
    blobs[sha(manifest)] = manifest
    mdesc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": sha(manifest), "size": len(manifest)}
    if name:
        mdesc["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
    members = [entry("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}'),
               entry("index.json", data=json.dumps({"schemaVersion": 2,
                                                    "manifests": [mdesc]}).encode())]
    members += [entry(f"blobs/sha256/{d[7:]}", data=b) for d, b in blobs.items()]
    if with_manifest_json:
        members.append(entry("manifest.json", data=json.dumps([{
            "Config": f"blobs/sha256/{sha(cfg)[7:]}", "RepoTags": [name] if name else [],
            "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in descs]}]).encode()))
    return tar_bytes(members)


def simple_layer(files: dict[str, bytes]) -> bytes:
    return tar_bytes([entry(n, data=d) for n, d in files.items()])


async def chunks_of(data: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
