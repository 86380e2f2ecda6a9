"""The build cache's rules: when a step can reuse an image built before.

A step is reused when an image was built from the same parent image with
the same probe config: the instruction after expansion (for RUN with the
build args it sees, for COPY/ADD with the checksum of what it copies), the
config it runs in, and the platform.  That is what Docker's classic
builder compares (moby's image cache `compare`); the key here hashes
exactly those fields, so a lookup is one dictionary access.

`--cache-from` images are matched as moby's ImageCache matches them, by
history: an image whose history continues the parent's with an entry
created by this step's command can supply that step.

Pure (no I/O).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

# the Config fields moby's cache compare looks at
_COMPARED = ("Env", "Cmd", "Entrypoint", "Shell", "OnBuild", "Labels", "AttachStdin",
             "AttachStdout", "AttachStderr", "NetworkDisabled", "Tty", "OpenStdin",
             "StdinOnce", "ArgsEscaped", "User", "WorkingDir", "StopSignal", "StopTimeout",
             "Healthcheck")
_KEYS_ONLY = ("ExposedPorts", "Volumes")


def _normalized(probe: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in _COMPARED:
        v = probe.get(k)
        if isinstance(v, (list, dict)) and not v:
            v = None
        if v is False or v == "":
            v = None
        out[k] = v
    hc = out.get("Healthcheck")
    if hc is not None:
        out["Healthcheck"] = {k: hc.get(k) or None for k in (
            "Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")}
    for k in _KEYS_ONLY:
        out[k] = sorted((probe.get(k) or {}).keys()) or None
    return out


def cache_key(parent_id: str, probe: dict[str, Any], platform: str) -> str:
    """The key of one step: same key, same result."""
    doc = {"parent": parent_id, "config": _normalized(probe), "platform": platform}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class CacheSource:
    """A --cache-from image: its id, config (as stored) and parent chain."""

    id: str
    config: dict[str, Any]


def _layer_index(history: list[dict[str, Any]], index: int) -> int | None:
    """The position in rootfs.diff_ids of history entry `index`'s layer."""
    if history[index].get("empty_layer"):
        return None
    return sum(1 for h in history[:index] if not h.get("empty_layer"))


def match_history(parent: dict[str, Any] | None, source: CacheSource,
                  probe: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """Can `source` supply the step from `parent` with `probe`?

    None: no.  (id, None): the source itself is the step's result.
    ("", config): an image config to create for the step (the parent plus
    the source's history entry and layer for it)."""
    s_hist = list(source.config.get("history") or [])
    s_diffs = list((source.config.get("rootfs") or {}).get("diff_ids") or [])
    p_hist = list((parent or {}).get("history") or [])
    p_diffs = list(((parent or {}).get("rootfs") or {}).get("diff_ids") or [])
    if not s_hist:
        return None
    if parent is not None and (p_hist or p_diffs):
        if len(p_hist) >= len(s_hist) or len(p_diffs) > len(s_diffs):
            return None
        if s_hist[:len(p_hist)] != p_hist or s_diffs[:len(p_diffs)] != p_diffs:
            return None
    n = len(p_hist)
    if n >= len(s_hist) or s_hist[n].get("created_by", "") != " ".join(probe.get("Cmd") or []):
        return None
    if n == len(s_hist) - 1:
        return source.id, None
    layer = _layer_index(s_hist, n)
    diffs = list(p_diffs)
    if layer is not None:
        if layer >= len(s_diffs):
            return None
        diffs.append(s_diffs[layer])
    base = parent or {}
    cfg: dict[str, Any] = {"architecture": source.config.get("architecture", ""),
                           "os": source.config.get("os", "linux")}
    if source.config.get("author"):
        cfg["author"] = source.config["author"]
    cfg["config"] = copy.deepcopy(probe)
    cfg["created"] = s_hist[n].get("created", "")
    cfg["history"] = [*copy.deepcopy(base.get("history") or []), copy.deepcopy(s_hist[n])]
    cfg["rootfs"] = {"type": "layers", "diff_ids": diffs}
    return "", cfg
