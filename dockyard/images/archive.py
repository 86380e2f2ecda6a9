"""`docker load` / `docker save` archives (synchronous; run in a thread).

Reading accepts:
* docker-archive as `docker save` writes it: legacy (`manifest.json` +
  `<id>.json` + `<v1id>/layer.tar`) and Docker 25+'s OCI layout that also
  carries `manifest.json` (paths under `blobs/sha256/`);
* a plain OCI image layout (`oci-layout` + `index.json`), names taken from
  the `io.containerd.image.name` / `org.opencontainers.image.ref.name`
  annotations;
* gzip or plain layers (detected by magic, as dockerd does), the archive
  itself plain or compressed.

The archive is hostile input: it is read with random access and never
unpacked to disk (a layer is copied out member by member), and a shape
that is not what it should be (manifest.json not a list of objects, a
member missing, a hardlink to nothing) is a 400 with a plain text, in Go's
words where dockerd's are worth matching.

Writing produces Docker 25+'s shape (OCI layout + manifest.json +
repositories) with uncompressed layers, which Docker 20.10+ and containerd
both load; all mtimes are 0 so the same images give the same bytes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import platform
import posixpath
import tarfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dockyard.errors import InvalidParameter
from dockyard.images import fsutil
from dockyard.images.layers import LayerError, invalid_layer_tar
from dockyard.images.progress import ProgressReader
from dockyard.images.reference import Reference, parse_normalized_named
from dockyard.util.cancel import CancelToken

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class ArchiveImage:
    """One image found in an archive: where its parts are, what it is called."""

    config_member: str
    layer_members: list[str]
    repo_tags: list[Reference] = field(default_factory=list)


def open_compressed(f: IO[bytes]) -> IO[bytes]:
    """Wrap a stream in the decompressor its magic bytes ask for."""
    head = f.read(6)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(f)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidParameter("zstd-compressed content is not supported")
    return f


def _go_json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _unmarshal(value: Any, go_type: str, field_name: str = "") -> InvalidParameter:
    """Go's json.UnmarshalTypeError text, as dockerd reports a bad manifest.json."""
    where = f"Go struct field {field_name}" if field_name else "Go value"
    return InvalidParameter(
        f"json: cannot unmarshal {_go_json_type(value)} into {where} of type {go_type}")


def go_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


class ArchiveReader:
    """Random access to the members of a (possibly compressed) archive file."""

    def __init__(self, path: Path) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._tf = tarfile.open(  # noqa: SIM115 - closed in close()
                fileobj=open_compressed(self._raw), mode="r:")
            self._members = {posixpath.normpath(m.name.lstrip("/")): m
                             for m in self._tf.getmembers() if m.isreg() or m.islnk()}
        except (tarfile.TarError, EOFError, OSError) as e:
            self._raw.close()
            if isinstance(e, OSError) and e.errno is not None:
                raise                   # the host's failure, not the archive's
            # as dockerd, which unpacks the archive before reading it
            raise invalid_layer_tar(e) from e
        except BaseException:
            self._raw.close()
            raise

    def close(self) -> None:
        self._tf.close()
        self._raw.close()

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self._members

    def open(self, name: str) -> IO[bytes]:
        key = posixpath.normpath(name.lstrip("/"))
        m = self._members.get(key)
        if m is None:
            raise InvalidParameter(f"invalid archive: missing {name}")
        try:
            f = self._tf.extractfile(m)
        except KeyError:
            # a hardlink whose target the archive lacks
            raise LayerError(f"link /{m.linkname} /{key}: no such file or directory") from None
        if f is None:
            raise InvalidParameter(f"invalid archive: {name} is not a file")
        return f

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        data = self.open(name).read(limit + 1)
        if len(data) > limit:
            raise InvalidParameter(f"invalid archive: {name} is too large")
        return data

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (ValueError, RecursionError) as e:   # too deeply nested too
            raise InvalidParameter(f"invalid archive: {name}: {e}") from e

    def images(self) -> list[ArchiveImage]:
        if self.has("manifest.json"):
            return self._docker_manifest()
        if self.has("index.json"):
            try:
                return self._oci_index()
            except (KeyError, TypeError, AttributeError, ValueError) as e:
                raise InvalidParameter(
                    "invalid archive: index.json or a manifest it names is malformed") from e
        if self.has("repositories"):
            raise InvalidParameter(
                "invalid archive: legacy v1 image format (no manifest.json) is not supported")
        raise InvalidParameter("invalid archive: no manifest.json or index.json found")

    def _docker_manifest(self) -> list[ArchiveImage]:
        out = []
        manifest = self.json("manifest.json")
        if not isinstance(manifest, list):
            raise _unmarshal(manifest, "[]tarexport.manifestItem")
        for entry in manifest:
            if not isinstance(entry, dict):
                raise _unmarshal(entry, "tarexport.manifestItem")
            config = entry.get("Config")
            if config is not None and not isinstance(config, str):
                raise _unmarshal(config, "string", "manifestItem.Config")
            layers = entry.get("Layers") or []
            tags = entry.get("RepoTags") or []
            for field_name, items in (("Layers", layers), ("RepoTags", tags)):
                if not isinstance(items, list):
                    raise _unmarshal(items, "[]string", f"manifestItem.{field_name}")
                for item in items:
                    if not isinstance(item, str):
                        raise _unmarshal(item, "string", f"manifestItem.{field_name}")
            if not config:
                raise InvalidParameter("invalid archive: an image in manifest.json has no Config")
            out.append(ArchiveImage(
                config, list(layers), [parse_normalized_named(t).with_default_tag() for t in tags]))
        return out

    def _blob_name(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        return f"blobs/{algo}/{hexpart}"

    def _pick_manifest(self, desc: dict[str, Any]) -> dict[str, Any]:
        """Follow nested indexes down to this host's platform manifest."""
        while desc.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            idx = self.json(self._blob_name(desc["digest"]))
            cands = [m for m in idx.get("manifests", [])
                     if self.has(self._blob_name(m["digest"]))
                     and (m.get("platform") or {}).get("architecture", go_arch()) == go_arch()]
            if not cands:
                raise InvalidParameter("invalid archive: no manifest for this platform")
            desc = cands[0]
        return desc

    def _oci_index(self) -> list[ArchiveImage]:
        out = []
        index = self.json("index.json")
        for desc in index.get("manifests", []):
            ann = desc.get("annotations") or {}
            mdesc = self._pick_manifest(desc)
            manifest = self.json(self._blob_name(mdesc["digest"]))
            tags = []
            name = ann.get(ANNOTATION_IMAGE_NAME) or ann.get(ANNOTATION_REF_NAME) or ""
            if name:
                try:
                    ref = parse_normalized_named(name)
                    if not ref.digest:
                        tags.append(ref.with_default_tag())
                except InvalidParameter:
                    pass              # a bare tag like "latest" names nothing loadable
            out.append(ArchiveImage(
                self._blob_name(manifest["config"]["digest"]),
                [self._blob_name(layer["digest"]) for layer in manifest.get("layers", [])],
                tags))
        return out

    def extract_layer(self, member: str, dest: Path,
                      progress: Callable[[IO[bytes], int], ProgressReader] | None = None,
                      cancel: CancelToken | None = None) -> str:
        """Decompress a layer into dest; returns its diff_id (uncompressed sha256).

        `progress(stream, size)` wraps the member's (compressed) bytes in a progress
        reader, as dockerd reads a layer it loads."""
        src: IO[bytes] = self.open(member)
        head = src.read(6)
        size = src.seek(0, os.SEEK_END)
        src.seek(0)
        if progress is not None:
            src = progress(src, size)  # type: ignore[assignment]
        stream: IO[bytes] = src
        if head.startswith(b"\x1f\x8b"):
            stream = gzip.GzipFile(fileobj=src)  # type: ignore[assignment]
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            raise InvalidParameter("zstd-compressed layers are not supported")
        with open(dest, "wb") as out:
            digest, _ = fsutil.copy_hashing(stream, out, cancel)
            out.flush()
            os.fsync(out.fileno())
        return digest


# -- writing -------------------------------------------------------------------

def _tar_header(name: str, size: int, is_dir: bool = False) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = 0 if is_dir else size
    ti.mtime = 0
    ti.mode = 0o755 if is_dir else 0o644
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    return ti.tobuf(format=tarfile.PAX_FORMAT)


def _tar_bytes(name: str, data: bytes) -> Iterator[bytes]:
    yield _tar_header(name, len(data)) + data + b"\0" * (-len(data) % 512)


def _tar_file(name: str, path: Path) -> Iterator[bytes]:
    size = path.stat().st_size
    yield _tar_header(name, size)
    with open(path, "rb") as f:
        while chunk := f.read(fsutil.CHUNK):
            yield chunk
    yield b"\0" * (-size % 512)


@dataclass
class SaveItem:
    image_id: str
    config_bytes: bytes
    diff_ids: list[str]
    tags: list[Reference]          # may be empty: saved by ID


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type,
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data), **extra}


def write_archive(items: list[SaveItem], blob_path: Any) -> Generator[bytes, None, None]:
    """Stream a docker-archive (OCI layout + manifest.json) of the images.

    blob_path(digest) -> Path gives the stored config / layer tar.
    """
    yield _tar_header("blobs/", 0, is_dir=True)
    yield _tar_header("blobs/sha256/", 0, is_dir=True)
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        cfg_hex = item.image_id.split(":", 1)[1]
        if cfg_hex not in written:
            written.add(cfg_hex)
            yield from _tar_bytes(f"blobs/sha256/{cfg_hex}", item.config_bytes)
        layers = []
        for diff in item.diff_ids:
            h = diff.split(":", 1)[1]
            path = blob_path(diff)
            if h not in written:
                written.add(h)
                yield from _tar_file(f"blobs/sha256/{h}", path)
            layers.append({"mediaType": OCI_LAYER, "digest": diff,
                           "size": path.stat().st_size})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, item.config_bytes),
            "layers": layers}, separators=(",", ":")).encode()
        mdesc = _descriptor(OCI_MANIFEST, manifest)
        if mdesc["digest"] not in written:
            written.add(mdesc["digest"])
            yield from _tar_bytes(f"blobs/sha256/{mdesc['digest'][7:]}", manifest)
        tags: list[Reference | None] = list(item.tags) or [None]
        for t in tags:
            d = dict(mdesc)
            if t is not None:
                d["annotations"] = {ANNOTATION_IMAGE_NAME: str(t), ANNOTATION_REF_NAME: t.tag}
                if item.diff_ids:
                    repositories.setdefault(t.familiar_name, {})[t.tag] = \
                        item.diff_ids[-1].split(":", 1)[1]
            index.append(d)
        manifest_json.append({
            "Config": f"blobs/sha256/{cfg_hex}",
            "RepoTags": [t.familiar() for t in item.tags],
            "Layers": [f"blobs/sha256/{d.split(':', 1)[1]}" for d in item.diff_ids]})
    enc = json.dumps
    yield from _tar_bytes("index.json", enc({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index},
        separators=(",", ":")).encode())
    yield from _tar_bytes("manifest.json", enc(manifest_json, separators=(",", ":")).encode())
    yield from _tar_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        yield from _tar_bytes("repositories", enc(repositories, separators=(",", ":")).encode())
    yield b"\0" * 1024
