"""The JSON types of an image config, checked before the store keeps it.

A loaded archive brings its own config, and everything that later reads it
(listing, inspect, history, a container's create) trusts its shape: a
`"config": "x"` kept once would fail every `docker images` after.  dockerd
never keeps such a config since Go's JSON decoder refuses it; this refuses
it the same way, with Go's words, at the one place configs enter the store.
Pure (no I/O).
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import InvalidParameter

_STR, _LIST_STR, _DICT, _LIST = "string", "[]string", "map", "[]object"

# field -> Go type, for the top level and for the container config
_TOP = {"architecture": _STR, "os": _STR, "variant": _STR, "created": _STR, "author": _STR,
        "comment": _STR, "docker_version": _STR, "container": _STR, "os.version": _STR,
        "os.features": _LIST_STR, "config": _DICT, "container_config": _DICT,
        "rootfs": _DICT, "history": _LIST}
_CONFIG = {"User": _STR, "WorkingDir": _STR, "StopSignal": _STR, "Hostname": _STR,
           "Domainname": _STR, "Image": _STR, "Env": _LIST_STR, "Cmd": _LIST_STR,
           "Entrypoint": _LIST_STR, "Shell": _LIST_STR, "OnBuild": _LIST_STR,
           "Labels": _DICT, "ExposedPorts": _DICT, "Volumes": _DICT, "Healthcheck": _DICT}
_HISTORY = {"created": _STR, "created_by": _STR, "author": _STR, "comment": _STR}


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _ok(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == _STR:
        return isinstance(value, str)
    if kind == _LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == _DICT:
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _check(obj: dict[str, Any], fields: dict[str, str], where: str) -> None:
    for name, kind in fields.items():
        value = obj.get(name)
        if not _ok(value, kind):
            shown = value
            if isinstance(value, list):
                shown = next((v for v in value if not _ok([v], kind)), value)
            raise InvalidParameter(f"json: cannot unmarshal {_go_type(shown)} into Go struct "
                                   f"field {where}.{name} of type {kind}")


def check_image_config(cfg: Any) -> dict[str, Any]:
    """`cfg` (parsed JSON) as an image config, or InvalidParameter."""
    if not isinstance(cfg, dict):
        raise InvalidParameter(f"json: cannot unmarshal {_go_type(cfg)} into Go value of "
                               "type image.Image")
    _check(cfg, _TOP, "Image")
    for key in ("config", "container_config"):
        if cfg.get(key):
            _check(cfg[key], _CONFIG, "Config")
            labels = cfg[key].get("Labels") or {}
            if not all(isinstance(v, str) for v in labels.values()):
                raise InvalidParameter("json: cannot unmarshal a label value that is no "
                                       "string into Go struct field Config.Labels of type "
                                       "map[string]string")
    rootfs = cfg.get("rootfs")
    if rootfs is None:
        raise InvalidParameter("invalid image JSON, no RootFS key")
    _check(rootfs, {"type": _STR, "diff_ids": _LIST_STR}, "RootFS")
    for h in cfg.get("history") or []:
        _check(h, _HISTORY, "History")
    return cfg
