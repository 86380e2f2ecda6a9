"""Build routes (moby's build router): `POST /build` and `POST /build/prune`.

The query is decoded as dockerd's newImageBuildOptions decodes it (the JSON
parameters with its error texts, `rm` defaulting to true, `forcerm`
implying it, `platform` from API 1.32 and `outputs` from 1.40) and the
`X-Registry-Config` header's credentials; the build backend checks the
values.  The body is the build context.  The stream is run up to its
first record before answering, so a failure before any step (a bad
option, context or Dockerfile) is an HTTP error; later ones are the
stream's last record.  A client that leaves cancels the build.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dockyard.api.routes.images import primed
from dockyard.api.server import (
    Request,
    Response,
    Router,
    cancel_on_disconnect,
    json_response,
    json_stream_response,
)
from dockyard.backend import BuildBackend, BuildOptions, BuildPruneOptions
from dockyard.errors import InvalidParameter


def _json_param(req: Request, name: str, what: str, kind: type) -> Any:
    raw = req.query_get(name) or ""
    if raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"error reading {what}: {e}") from None
    if value is None:
        return None
    if not isinstance(value, kind):
        raise InvalidParameter(f"error reading {what}: json: cannot unmarshal "
                               f"{type(value).__name__} into Go value of type "
                               f"{'[]string' if kind is list else 'map[string]string'}")
    return value


def _int64(req: Request, name: str) -> int:
    """httputils.Int64ValueOrZero: a value that does not parse is 0."""
    try:
        value = int(req.query_get(name) or "0", 10)
    except ValueError:
        return 0
    return value if -(1 << 63) <= value < (1 << 63) else 0


def _auth_configs(req: Request) -> dict[str, dict[str, Any]]:
    """X-Registry-Config: base64url JSON of registry -> AuthConfig; as dockerd,
    a header that does not decode is no credentials, not an error."""
    raw = req.headers.get("x-registry-config", "")
    if not raw:
        return {}
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def build_options(req: Request) -> BuildOptions:
    version = req.api_version
    build_args = _json_param(req, "buildargs", "build args", dict) or {}
    if not all(v is None or isinstance(v, str) for v in build_args.values()):
        raise InvalidParameter("error reading build args: json: cannot unmarshal a value "
                               "that is no string into Go value of type map[string]*string")
    labels = _json_param(req, "labels", "labels", dict) or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise InvalidParameter("error reading labels: json: cannot unmarshal a value that is "
                               "no string into Go value of type map[string]string")
    cache_from = _json_param(req, "cachefrom", "cache-from", list) or []
    if not all(isinstance(v, str) for v in cache_from):
        raise InvalidParameter("error reading cache-from: json: cannot unmarshal a value that "
                               "is no string into Go value of type []string")
    ulimits = _json_param(req, "ulimits", "ulimit settings", list) or []
    outputs: list[Any] = []
    if version >= (1, 40):
        raw = req.query_get("outputs") or ""
        if raw:
            try:
                outputs = json.loads(raw) or []
            except ValueError as e:
                raise InvalidParameter(f"invalid outputs specified: {e}") from None
    shm = req.query_get("shmsize") or ""
    try:
        shm_size = int(shm, 10) if shm else 0
    except ValueError:
        raise InvalidParameter(f'strconv.ParseInt: parsing "{shm}": invalid syntax') from None
    if not -(1 << 63) <= shm_size < (1 << 63):
        raise InvalidParameter(f'strconv.ParseInt: parsing "{shm}": value out of range')
    rm = req.query_get("rm")
    force_rm = req.query_bool("forcerm")
    remove = True if force_rm or not rm else req.query_bool("rm")
    return BuildOptions(
        tags=req.query_all("t"), dockerfile=req.query_get("dockerfile") or "",
        build_args=build_args, labels=labels, target=req.query_get("target") or "",
        no_cache=req.query_bool("nocache"), pull=req.query_bool("pull"), remove=remove,
        force_remove=force_rm, quiet=req.query_bool("q"), cache_from=cache_from,
        shm_size=shm_size, memory=_int64(req, "memory"), memory_swap=_int64(req, "memswap"),
        cpu_shares=_int64(req, "cpushares"), cpu_period=_int64(req, "cpuperiod"),
        cpu_quota=_int64(req, "cpuquota"), cpuset_cpus=req.query_get("cpusetcpus") or "",
        cpuset_mems=req.query_get("cpusetmems") or "",
        cgroup_parent=req.query_get("cgroupparent") or "",
        network_mode=req.query_get("networkmode") or "",
        extra_hosts=req.query_all("extrahosts"), ulimits=ulimits,
        security_opt=req.query_all("securityopt"),
        platform=(req.query_get("platform") or "") if version >= (1, 32) else "",
        squash=req.query_bool("squash"), isolation=req.query_get("isolation") or "",
        remote=req.query_get("remote") or "", session=req.query_get("session") or "",
        build_id=req.query_get("buildid") or "", version=req.query_get("version") or "1",
        outputs=outputs, auth_configs=_auth_configs(req), api_version=version)


def _bytes_param(req: Request, name: str) -> int:
    raw = req.query_get(name) or ""
    if not raw:
        return 0
    try:
        value = int(raw, 10)
    except ValueError:
        raise InvalidParameter(f'{name} is in bytes and expects an integer, got {raw}: '
                               f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
    if not -(1 << 63) <= value < (1 << 63):
        raise InvalidParameter(f'{name} is in bytes and expects an integer, got {raw}: '
                               f'strconv.Atoi: parsing "{raw}": value out of range')
    return value


class BuildRoutes:
    def __init__(self, backend: BuildBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("POST", "/build", self.build)
        r.add("POST", "/build/prune", self.prune)

    async def build(self, req: Request) -> Response:
        opts = build_options(req)
        stream = self.backend.build(opts, req.body_chunks())
        return json_stream_response(await cancel_on_disconnect(req, primed(stream)))

    async def prune(self, req: Request) -> Response:
        keep = _bytes_param(req, "keep-storage")
        if req.api_version >= (1, 48):
            keep = _bytes_param(req, "reserved-space") or keep
            for name in ("max-used-space", "min-free-space"):
                if _bytes_param(req, name):
                    raise InvalidParameter(f"{name} is not supported by this builder's cache; "
                                           "use reserved-space (keep-storage)")
        opts = BuildPruneOptions(all=req.query_bool("all"), filters=req.filters(),
                                 keep_storage=keep)
        return json_response(await self.backend.prune(opts))
