"""Manifests and indexes, as received from a registry and as pushed (pure).

A registry answer is hostile input: `parse_manifest` decides what the bytes
are (the Content-Type, else the body's own `mediaType`, else its shape, as
dockerd's `detectManifestBlobMediaType`), checks every field a pull will
use (descriptors with a valid digest, a non-negative size, a known layer
media type) and refuses the rest with dockerd's texts.  Schema 1 manifests
are refused with dockerd's deprecation text.

`schema2_manifest` builds what dockerd pushes: a Docker v2 schema 2
manifest, indented with three spaces as Go's MarshalIndent writes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# what a pull asks for, best first (dockerd's Accept list)
ACCEPT = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_LIST, OCI_INDEX)
CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG, "application/octet-stream", "")
LAYER_TYPES = {
    DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_FOREIGN: "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    OCI_LAYER: "none", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "none", OCI_LAYER_NONDIST_GZIP: "gzip", OCI_LAYER_NONDIST_ZSTD: "zstd",
}
# what a manifest whose config is of another class is (dockerd's mediaTypeClasses)
CONFIG_CLASSES = {
    "application/vnd.docker.plugin.v1+json": "plugin",
    "application/vnd.cncf.helm.config.v1+json": "helm chart",
}
MAX_MANIFEST = 4 << 20          # dockerd's limit on a manifest body

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha384:[a-f0-9]{96}$|^sha512:[a-f0-9]{128}$")


def schema1_error(ref: str = "") -> InvalidParameter:
    msg = ("Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has "
           "been removed.")
    if ref:
        msg += (f" Suggest the author of {ref} to upgrade the image to the OCI Format or "
                "Docker Image manifest v2, schema 2.")
    return InvalidParameter(msg + " More information at https://docs.docker.com/go/deprecated-"
                            "image-specs/")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(algorithm_digest: str, data: bytes) -> str:
    """`data` hashed with the algorithm `algorithm_digest` names."""
    algo = algorithm_digest.partition(":")[0]
    return f"{algo}:" + hashlib.new(algo, data).hexdigest()


def valid_digest(d: Any) -> bool:
    return isinstance(d, str) and bool(_DIGEST.match(d))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        # Go's field order in distribution.Descriptor
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass
class Index:
    media_type: str
    manifests: list[dict[str, Any]] = field(default_factory=list)   # raw entries


def _descriptor(obj: Any, what: str, platform: bool = False) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidParameter(f"invalid manifest: {what} is not a descriptor")
    digest, size, mt = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not valid_digest(digest):
        raise InvalidParameter(f"invalid manifest: {what} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidParameter(f"invalid manifest: {what} has an invalid size {size!r}")
    if not isinstance(mt, str):
        raise InvalidParameter(f"invalid manifest: {what} has an invalid mediaType")
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidParameter(f"invalid manifest: {what} has invalid urls")
    plat = obj.get("platform") if platform else None
    if plat is not None and not isinstance(plat, dict):
        raise InvalidParameter(f"invalid manifest: {what} has an invalid platform")
    return Descriptor(mt, str(digest), size, plat, tuple(urls))


def detect_media_type(doc: dict[str, Any]) -> str:
    """dockerd's detectManifestBlobMediaType."""
    mt = doc.get("mediaType", "")
    has = {k: doc.get(k) is not None for k in ("manifests", "config", "layers", "fsLayers")}
    if mt in IMAGE_MANIFESTS:
        if has["manifests"] or has["fsLayers"]:
            raise InvalidParameter(
                f'media-type: "{mt}" should not have "manifests" or "fsLayers"')
        return str(mt)
    if mt in INDEXES:
        if has["config"] or has["layers"] or has["fsLayers"]:
            raise InvalidParameter(
                f'media-type: "{mt}" should not have "config", "layers", or "fsLayers"')
        return str(mt)
    if mt in (SCHEMA1, SCHEMA1_SIGNED):
        raise schema1_error()
    if mt:
        return str(mt)
    if has["fsLayers"] and not (has["manifests"] or has["layers"] or has["config"]):
        raise schema1_error()
    if (has["config"] or has["layers"]) and not (has["manifests"] or has["fsLayers"]):
        return OCI_MANIFEST
    if not (has["config"] or has["layers"] or has["fsLayers"]):
        return OCI_INDEX
    raise InvalidParameter("media-type: cannot determine")


def parse_manifest(body: bytes, content_type: str = "", ref: str = ""
                   ) -> ImageManifest | Index:
    """A manifest or index from a registry, checked; InvalidParameter if not."""
    ct = content_type.split(";")[0].strip()
    if ct in (SCHEMA1, SCHEMA1_SIGNED):
        raise schema1_error(ref)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        if ct not in IMAGE_MANIFESTS + INDEXES:
            # distribution's UnmarshalManifest: no parser for that Content-Type
            raise InvalidParameter("unsupported manifest media type and no default "
                                   f"available: {ct}") from None
        raise InvalidParameter(f"error unmarshalling content: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("error unmarshalling content: not a JSON object")
    mt = detect_media_type(doc)
    if ct in IMAGE_MANIFESTS + INDEXES and ct != mt and doc.get("mediaType"):
        raise InvalidParameter(f"mediaType in manifest should be '{ct}' not '{mt}'")
    if ct in IMAGE_MANIFESTS + INDEXES and not doc.get("mediaType"):
        mt = ct
    if doc.get("schemaVersion") == 1:
        raise schema1_error(ref)
    if mt in INDEXES:
        entries = doc.get("manifests") or []
        if not isinstance(entries, list):
            raise InvalidParameter("invalid manifest: manifests is not a list")
        for i, entry in enumerate(entries):
            _descriptor(entry, f"manifests[{i}]", platform=True)
        return Index(mt, entries)
    if mt not in IMAGE_MANIFESTS:
        raise InvalidParameter("unsupported manifest format")
    config = _descriptor(doc.get("config"), "config")
    if config.media_type not in CONFIG_TYPES:
        cls = CONFIG_CLASSES.get(config.media_type, "unknown")
        raise InvalidParameter(
            f'Encountered remote "{config.media_type}"({cls}) when fetching')
    raw_layers = doc.get("layers")
    if raw_layers is None:
        raw_layers = []
    if not isinstance(raw_layers, list):
        raise InvalidParameter("invalid manifest: layers is not a list")
    layers = [_descriptor(x, f"layers[{i}]") for i, x in enumerate(raw_layers)]
    for layer in layers:
        if layer.media_type.startswith("application/vnd.docker.ai."):
            raise InvalidParameter('AI models are not yet supported by the Engine, please use '
                                   '"docker model pull/run" instead')
        if layer.media_type not in LAYER_TYPES:
            raise InvalidParameter(f"unsupported media type {layer.media_type}")
    return ImageManifest(mt, config, layers)


def schema2_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The bytes dockerd pushes (MarshalIndent with three spaces)."""
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": config.to_json(), "layers": [x.to_json() for x in layers]}
    return json.dumps(doc, indent=3, separators=(",", ": ")).encode()


def index_platforms(index: Index) -> list[dict[str, Any]]:
    """`GET /distribution/{name}/json`'s Platforms of an index."""
    out = []
    for e in index.manifests:
        p = e.get("platform") or {}
        item: dict[str, Any] = {"architecture": p.get("architecture", ""),
                                "os": p.get("os", "")}
        for k in ("os.version", "os.features", "variant"):
            if p.get(k):
                item[k] = p[k]
        out.append(item)
    return out


def config_platform(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The Platforms of a single manifest: its config's, when it says."""
    item: dict[str, Any] = {}
    for k in ("architecture", "os", "os.version", "os.features", "variant"):
        v = config.get(k)
        if v:
            item[k] = v
    if not item.get("os") and not item.get("architecture"):
        return []
    item.setdefault("architecture", "")
    item.setdefault("os", "")
    return [item]
