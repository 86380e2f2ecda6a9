"""Commit helpers: the new image's Config (moby's commit `merge`), the target
reference, and the layer tar made from the upper dir."""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.engine.fs.diff import LowerView, Skips
from dockyard.engine.fs.tar import END_OF_ARCHIVE, TarStreamer
from dockyard.errors import InvalidParameter
from dockyard.images.changes import apply_changes
from dockyard.images.reference import parse_normalized_named, validate_tag
from dockyard.oci.schema import decode_commit_config


def parse_repo_tag(repo: str, tag: str) -> tuple[str, str] | None:
    """Validate `repo` and `tag` before any work (moby's RepoTagReference)."""
    if not repo:
        return None
    ref = parse_normalized_named(repo)
    if ref.digest:
        raise InvalidParameter("cannot create a tag for a digested reference")
    if tag:
        validate_tag(tag)
    return repo, tag


def merge_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby daemon/commit.go `merge`: fill what the user config leaves unset."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = image.get("User", "")
    ports = dict(out.get("ExposedPorts") or {})
    for p, v in (image.get("ExposedPorts") or {}).items():
        ports.setdefault(p, v)
    if ports or "ExposedPorts" in image:
        out["ExposedPorts"] = ports or image.get("ExposedPorts")
    env = list(out.get("Env") or [])
    if not env:
        env = list(image.get("Env") or [])
    else:
        keys = {e.split("=", 1)[0] for e in env}
        env += [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Env"] = env or None
    labels = dict(out.get("Labels") or {})
    for k, v in (image.get("Labels") or {}).items():
        labels.setdefault(k, v)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            if "ArgsEscaped" in image:
                out["ArgsEscaped"] = image["ArgsEscaped"]
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    ihc = image.get("Healthcheck")
    if ihc is not None:
        uhc = out.get("Healthcheck")
        if uhc is None:
            out["Healthcheck"] = ihc
        else:
            for k in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
                if not uhc.get(k):
                    uhc[k] = ihc.get(k)
    if not out.get("WorkingDir"):
        out["WorkingDir"] = image.get("WorkingDir", "")
    vols = dict(out.get("Volumes") or {})
    vols.update(image.get("Volumes") or {})
    out["Volumes"] = vols or None
    if not out.get("StopSignal") and image.get("StopSignal"):
        out["StopSignal"] = image["StopSignal"]
    return out


def build_commit_config(body: dict[str, Any] | None, container_config: dict[str, Any],
                        changes: list[str]) -> dict[str, Any]:
    """The committed image's Config: the request's (or the container's), the
    `--change` instructions, then merged with the container's config."""
    body = decode_commit_config(body)     # Go's decoding: types, field names in any case
    base = body if body is not None else container_config
    return merge_config(apply_changes(base, changes), container_config)


def commit_tar(upper: Path, lowers: list[str], skips: Skips) -> Iterator[bytes]:
    """The upper dir as a layer tar: whiteouts as `.wh.`, mount points left out,
    and directories the runtime only touched to create mount points too."""
    lower = LowerView(lowers)

    def keep_dir(cpath: str, st: os.stat_result) -> bool:
        if cpath not in skips.ancestors:
            return True
        low = lower.lstat(cpath)
        return low is None or not stat.S_ISDIR(low.st_mode) or (
            (low.st_mode, low.st_uid, low.st_gid) != (st.st_mode, st.st_uid, st.st_gid))

    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        streamer = TarStreamer(all_xattrs=True, overlay_whiteouts=True, skip=skips,
                               keep_dir=keep_dir, partial_ok=False)
        yield from streamer.dir_tree(fd, "", "/", include_self=False)
        yield END_OF_ARCHIVE
    finally:
        os.close(fd)
