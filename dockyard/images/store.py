"""The content-addressed local image store (synchronous; run it in a thread).

On-disk layout under `<data_root>/images/`:

    blobs/sha256/<hex>       image configs, byte-exact (ID = sha256 of them),
                             and uncompressed layer tars named by diff_id, so
                             `docker save` re-emits tars whose sha256 is the
                             diff_id without re-creating them from files
    layers/<chain-hex>/      one unpacked layer, keyed by chain ID so a layer
                             is unpacked once and shared by every image (and,
                             via overlay lowerdir, every container) above the
                             same parent chain:
        diff/                the layer's files (an overlay lowerdir)
        layer.json           {chain_id, diff_id, parent, size}
    imagedb/<id-hex>.json    local metadata of an image: last_tag_time,
                             parent, hidden (see below)
    repositories.json        every reference -> image ID, one file so that
                             moving a tag between images is one rename
    tmp/                     staging; anything in it is garbage at start

Commit points: a layer exists once its directory is renamed into `layers/`;
an image exists once its imagedb record is renamed into place (config blob
and layers are written first).  Layers that no image record names are
garbage and are collected at start and after failed operations; a layer to
delete is first renamed into `tmp/`, so a crash half way through deleting
it leaves only garbage that the next start sweeps.  Nothing found on disk
stops the store from opening: what cannot be read or removed is logged and
left for the next start.

Image data is root's alone: `images/` and everything below it is mode
0700 (files 0600), fixed at start for stores made by older versions.

"Hidden" images: `rmi -f` of an image a stopped container still uses
untags it and hides it from listings, but keeps its layers until no
container uses it (Docker keeps them through the container's layer refs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dockyard.errors import InvalidParameter, NotFound
from dockyard.images import fsutil
from dockyard.images.imageconfig import check_image_config
from dockyard.images.layers import apply_layer_tar
from dockyard.images.reference import Reference, parse_any, parse_normalized_named
from dockyard.util import fstree
from dockyard.util.cancel import CancelToken
from dockyard.util.timefmt import rfc3339_nano_fixed

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain IDs: identity of a layer together with all below it."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if ":" in digest else digest


def now_rfc3339() -> str:
    return rfc3339_nano_fixed(time.time_ns())


@dataclass(frozen=True)
class StagedLayer:
    """A layer unpacked in tmp/, not yet part of the store."""

    path: Path
    diff_id: str
    chain_id: str
    size: int


@dataclass
class ImageRecord:
    id: str                                   # "sha256:<hex>"
    config_bytes: bytes
    config: dict[str, Any]
    diff_ids: list[str]
    chain_ids: list[str]
    last_tag_time: str = ""
    parent: str = ""
    hidden: bool = False
    size: int = 0
    repo_tags: list[str] = field(default_factory=list)     # familiar strings
    repo_digests: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return _hex(self.id)[:12]

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.layers_dir = root / "layers"
        self.imagedb = root / "imagedb"
        self.tmp = root / "tmp"
        for d in (root, self.blobs.parent, self.blobs, self.layers_dir, self.imagedb, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            os.chmod(d, PRIVATE_DIR)
        self._sweep()
        self.refs: dict[str, str] = {}          # full reference string -> image id
        self.images: dict[str, ImageRecord] = {}
        self.layer_sizes: dict[str, int] = {}   # chain id -> size
        self._load()
        self.gc_layers()

    # -- loading state ---------------------------------------------------------

    def _sweep(self) -> None:
        """What a crash left: staging (a half unpacked layer, a spooled upload,
        a half deleted layer) and the temp files of interrupted atomic writes;
        blobs made private as they should be."""
        fstree.clear_dir(self.tmp, unmount=True)
        for d in (self.root, self.blobs, self.imagedb):
            for p in d.iterdir():
                if p.name.startswith(".tmp"):
                    fstree.remove_quietly(p, "interrupted write")
        for p in self.blobs.iterdir():
            try:
                if stat.S_IMODE(p.lstat().st_mode) & 0o077:
                    os.chmod(p, PRIVATE_FILE)
            except OSError as e:
                log.warning("blob %s: %s", p.name, e)

    def _load(self) -> None:
        for p in self.layers_dir.iterdir():
            try:
                meta = fsutil.read_json(p / "layer.json")
                chain, size = str(meta["chain_id"]), int(meta.get("size", 0))
            except (OSError, ValueError, TypeError, KeyError) as e:
                # a layer is renamed in whole with its layer.json: this is none
                log.warning("removing unreadable layer %s: %s", p.name, e)
                self._discard_layer_dir(p)
                continue
            self.layer_sizes[chain] = size
        for p in self.imagedb.glob("*.json"):
            image_id = "sha256:" + p.stem
            try:
                meta = fsutil.read_json(p)
                cfg_bytes = (self.blobs / p.stem).read_bytes()
                self.images[image_id] = self._record(image_id, cfg_bytes, meta)
            except FileNotFoundError:
                p.unlink(missing_ok=True)
            except (OSError, ValueError, TypeError, AttributeError) as e:
                log.error("skipping unreadable image record %s: %s", p.name, e)
        try:
            refs = fsutil.read_json(self.root / "repositories.json", {}) or {}
        except (OSError, ValueError) as e:
            log.error("unreadable repositories.json, no image is tagged: %s", e)
            refs = {}
        self.refs = {}
        saved = refs.get("refs") if isinstance(refs, dict) else None
        for r, i in (saved if isinstance(saved, dict) else {}).items():
            if i not in self.images:
                continue
            try:
                parse_normalized_named(r)
            except InvalidParameter:
                log.error("dropping unreadable reference %r", r)
                continue
            self.refs[r] = i
        self._refresh_refs()

    def _record(self, image_id: str, cfg_bytes: bytes, meta: dict[str, Any]) -> ImageRecord:
        cfg = json.loads(cfg_bytes)
        diffs = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        chains = chain_ids(diffs)
        return ImageRecord(
            id=image_id, config_bytes=cfg_bytes, config=cfg, diff_ids=diffs,
            chain_ids=chains, last_tag_time=meta.get("last_tag_time", ""),
            parent=meta.get("parent", ""), hidden=bool(meta.get("hidden")),
            size=sum(self.layer_sizes.get(c, 0) for c in chains))

    def _refresh_refs(self) -> None:
        for img in self.images.values():
            img.repo_tags, img.repo_digests = [], []
        for ref_s, image_id in sorted(self.refs.items()):
            ref = parse_normalized_named(ref_s)
            img = self.images[image_id]
            if ref.digest:
                img.repo_digests.append(ref.familiar())
            else:
                img.repo_tags.append(ref.familiar())

    # -- layers ----------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> Path:
        return self.layers_dir / _hex(chain_id)

    def has_layer(self, chain_id: str) -> bool:
        return chain_id in self.layer_sizes

    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def new_temp(self, prefix: str) -> Path:
        return self.tmp / f"{prefix}-{uuid.uuid4().hex}"

    def add_layer(self, tar_path: Path, diff_id: str, chain_id: str, parent: str,
                  privileged: bool = False, cancel: CancelToken | None = None) -> bool:
        """Unpack an uncompressed, verified layer tar; True if it was new.

        The tar is moved into the blob store (it is the source of truth for
        `save`); `tar_path` must be on the same filesystem (in tmp/).
        """
        blob = self.blob_path(diff_id)
        if not blob.exists():
            os.chmod(tar_path, PRIVATE_FILE)
            os.replace(tar_path, blob)
            fsutil.fsync_dir(blob.parent)
        if self.has_layer(chain_id):
            return False
        staged = self.stage_layer(blob, diff_id, chain_id, parent, privileged, cancel)
        return self.commit_layer(staged, blob)

    def stage_layer(self, tar_path: Path, diff_id: str, chain_id: str, parent: str,
                    privileged: bool = False, cancel: CancelToken | None = None,
                    wrap: Callable[[IO[bytes]], IO[bytes]] | None = None) -> StagedLayer:
        """Unpack a verified layer tar into a staging directory in tmp/.

        Touches no state of the store, so several can run at once (a pull
        unpacks each layer as soon as it has arrived); `commit_layer` then
        makes it part of the store, or `discard_staged` drops it."""
        stage = self.new_temp("layer")
        (stage / "diff").mkdir(parents=True)
        try:
            result = apply_layer_tar(tar_path, stage / "diff", privileged=privileged,
                                     cancel=cancel, wrap=wrap)
            fsutil.atomic_write_json(stage / "layer.json", {
                "chain_id": chain_id, "diff_id": diff_id, "parent": parent,
                "size": result.size})
            fsutil.fsync_dir(stage)
        except BaseException:
            fstree.remove_quietly(stage, "staged layer")
            raise
        return StagedLayer(stage, diff_id, chain_id, result.size)

    def commit_layer(self, staged: StagedLayer, tar_path: Path) -> bool:
        """Make a staged layer (and its tar, as the layer's blob) part of the
        store; False (the staging dropped) when the layer is already here."""
        blob = self.blob_path(staged.diff_id)
        if tar_path != blob and not blob.exists():
            os.chmod(tar_path, PRIVATE_FILE)
            os.replace(tar_path, blob)
            fsutil.fsync_dir(blob.parent)
        if self.has_layer(staged.chain_id):
            self.discard_staged(staged)
            return False
        try:
            os.replace(staged.path, self.layer_dir(staged.chain_id))
            fsutil.fsync_dir(self.layers_dir)
        except BaseException:
            self.discard_staged(staged)
            raise
        self.layer_sizes[staged.chain_id] = staged.size
        return True

    def discard_staged(self, staged: StagedLayer) -> None:
        fstree.remove_quietly(staged.path, "staged layer")

    def _discard_layer_dir(self, path: Path) -> None:
        """Out of layers/ in one rename, then deleted; what cannot be deleted
        now stays in tmp/ for the next start."""
        trash = self.new_temp("trash")
        try:
            os.replace(path, trash)
        except FileNotFoundError:
            return
        except OSError as e:
            log.warning("cannot move layer %s out of the store: %s", path.name, e)
            return
        fstree.remove_quietly(trash, "removed layer")

    def gc_layers(self) -> list[str]:
        """Remove layers and layer blobs that no image record uses."""
        used = {c for img in self.images.values() for c in img.chain_ids}
        used_blobs = {_hex(d) for img in self.images.values() for d in img.diff_ids}
        used_blobs |= {_hex(i) for i in self.images}
        removed = []
        for chain in list(self.layer_sizes):
            if chain not in used:
                del self.layer_sizes[chain]
                removed.append(chain)
                self._discard_layer_dir(self.layer_dir(chain))
        for p in self.blobs.iterdir():
            if p.name not in used_blobs and not p.name.startswith(".tmp"):
                p.unlink(missing_ok=True)
        return removed

    # -- images ----------------------------------------------------------------

    def add_image(self, config_bytes: bytes, parent: str = "") -> tuple[ImageRecord, bool]:
        """Record an image whose layers are all present; (record, was_new)."""
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        existing = self.images.get(image_id)
        if existing is not None:
            if existing.hidden:
                existing.hidden = False
                self._write_meta(existing)
            return existing, False
        try:
            cfg = check_image_config(json.loads(config_bytes))
        except (ValueError, RecursionError) as e:
            raise InvalidParameter(f"invalid image config: {e}") from e
        for c in chain_ids(list((cfg.get("rootfs") or {}).get("diff_ids") or [])):
            if not self.has_layer(c):
                raise InvalidParameter(f"layer {c} of image {image_id} is missing")
        fsutil.atomic_write_bytes(self.blob_path(image_id), config_bytes, PRIVATE_FILE)
        rec = self._record(image_id, config_bytes, {"parent": parent})
        self._write_meta(rec)
        self.images[image_id] = rec
        return rec, True

    def _write_meta(self, rec: ImageRecord) -> None:
        meta: dict[str, Any] = {"last_tag_time": rec.last_tag_time, "parent": rec.parent}
        if rec.hidden:
            meta["hidden"] = True
        fsutil.atomic_write_json(self.imagedb / f"{_hex(rec.id)}.json", meta)

    def set_hidden(self, rec: ImageRecord, hidden: bool) -> None:
        rec.hidden = hidden
        self._write_meta(rec)

    def delete_image(self, image_id: str) -> list[str]:
        """Forget an image; returns the chain IDs of layers removed with it."""
        rec = self.images.pop(image_id)
        (self.imagedb / f"{_hex(rec.id)}.json").unlink()   # the commit point
        fsutil.fsync_dir(self.imagedb)
        self.refs = {r: i for r, i in self.refs.items() if i != image_id}
        self._save_refs()
        return self.gc_layers()

    def children(self, image_id: str) -> list[ImageRecord]:
        return [i for i in self.images.values() if i.parent == image_id]

    def search_id(self, prefix: str) -> ImageRecord | None:
        """Resolve a full or unique-prefix image ID (with or without sha256:)."""
        p = prefix.removeprefix("sha256:")
        if not p or any(c not in "0123456789abcdef" for c in p):
            return None
        hits = [img for img in self.images.values()
                if _hex(img.id).startswith(p) and not img.hidden]
        if len(hits) > 1:
            raise NotFound(f"No such image: {prefix} (ambiguous prefix)")
        return hits[0] if hits else None

    def resolve(self, name: str) -> ImageRecord:
        """Name, reference, ID or unique ID prefix -> image (dockerd's GetImage)."""
        parsed = parse_any(name)
        if isinstance(parsed, str):
            rec = self.images.get(parsed)
            if rec is None or rec.hidden:
                raise NotFound(f"No such image: {parsed}")
            return rec
        ref = parsed.with_default_tag()
        rec = self.lookup_ref(ref)
        if rec is not None:
            return rec
        if not parsed.tag and not parsed.digest:
            rec = self.search_id(name)
            if rec is not None:
                return rec
        raise NotFound(f"No such image: {ref.familiar()}")

    # -- references ------------------------------------------------------------

    def lookup_ref(self, ref: Reference) -> ImageRecord | None:
        image_id = self.refs.get(str(ref))
        return self.images.get(image_id) if image_id else None

    def set_ref(self, ref: Reference, image_id: str) -> str:
        """Point ref at image_id; returns the image it pointed at before ("")."""
        old = self.refs.get(str(ref), "")
        self.refs[str(ref)] = image_id
        rec = self.images[image_id]
        rec.last_tag_time = now_rfc3339()
        self._write_meta(rec)
        self._save_refs()
        return old if old != image_id else ""

    def remove_ref(self, ref: Reference) -> str:
        image_id = self.refs.pop(str(ref), "")
        if image_id:
            self._save_refs()
        return image_id

    def refs_of(self, image_id: str) -> list[Reference]:
        return [parse_normalized_named(r) for r, i in sorted(self.refs.items()) if i == image_id]

    def _save_refs(self) -> None:
        fsutil.atomic_write_json(self.root / "repositories.json", {"refs": self.refs})
        self._refresh_refs()

    def lower_dirs(self, image_id: str) -> list[str]:
        rec = self.images.get(image_id)
        if rec is None:
            raise NotFound(f"No such image: {image_id}")
        return [str(self.layer_dir(c) / "diff") for c in reversed(rec.chain_ids)]
