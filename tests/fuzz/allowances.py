"""Where dockyard follows dockerd's real behaviour over the text of Docker's
API description.  Every deviation the fuzz lane accepts is here, each with
the reason; nothing else is relaxed.  Two kinds:

- corrections to the description as loaded (`patch_spec`): what dockerd
  answers that the description does not say, written into the lane's copy
  so the checks hold every other part of the answer to it;
- rules on single failures (`allowed`), where the Swagger 2.0 format cannot
  say what dockerd does (one `produces` list for all of an operation's
  answers).

The reference for "what dockerd does" is moby's API server (API 1.51, the
version dockyard speaks) and Docker Engine 20.10 run beside dockyard on the
same machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import schemathesis
from schemathesis.core.failures import Failure

# -- corrections to the description

# Statuses dockerd gives that the description does not list, by operation.
# dockerd maps its errors to statuses the same way on every route: an invalid
# parameter is 400, a missing object 404, a conflict with the object's state
# (paused, not running, in use) 409, something the engine does not do 501.
_BAD = "400: an invalid parameter (errdefs.InvalidParameter)"
_STATE = "409: the container's state forbids it (paused, not running, already so)"
_MISSING = "404: no such image"
_NOT_DONE = "501: a part of the operation this engine does not implement"
EXTRA_STATUSES: dict[str, dict[int, str]] = {
    "ContainerAttach": {409: _STATE},
    "ContainerAttachWebsocket": {409: _STATE},
    "ContainerExec": {400: _BAD},
    "ContainerKill": {400: _BAD},
    "ContainerLogs": {400: _BAD},
    "ContainerPause": {409: _STATE},
    "ContainerPrune": {400: _BAD},
    "ContainerRename": {400: _BAD},
    "ContainerResize": {400: _BAD, 409: _STATE},
    "ContainerRestart": {400: _BAD},
    "ContainerStart": {409: _STATE},
    "ContainerStop": {400: _BAD},
    "ContainerTop": {409: _STATE},
    "ContainerUnpause": {409: _STATE},
    "ContainerUpdate": {400: _BAD},
    "ContainerWait": {409: _STATE},
    "ExecResize": {409: _STATE},
    "ExecStart": {400: _BAD},
    "BuildPrune": {400: _BAD},
    "ImageBuild": {501: _NOT_DONE},
    "ImageCommit": {400: _BAD, 409: _STATE},
    "DistributionInspect": {400: _BAD, 404: "404: no such manifest or repository "
                            "(pull access denied, manifest unknown, a full image ID)"},
    "ImageCreate": {400: _BAD, 403: "403: 'scratch' is a reserved name (errdefs.Forbidden)",
                    501: _NOT_DONE},
    "ImagePush": {400: _BAD},
    "ImageDelete": {400: _BAD},
    "ImageGet": {400: _BAD, 404: _MISSING},
    "ImageGetAll": {400: _BAD, 404: _MISSING},
    "ImageHistory": {400: _BAD},
    "ImageInspect": {400: _BAD},
    "ImageList": {400: _BAD},
    "ImageLoad": {400: _BAD},
    "ImagePrune": {400: _BAD},
    "ImageSearch": {400: _BAD, 501: _NOT_DONE},
    "NetworkConnect": {400: _BAD},
    "NetworkCreate": {403: "403: a pre-defined network's driver (errdefs.Forbidden)",
                      404: "404: an unknown network or IPAM driver (plugin not found)",
                      409: "409: a network of that name exists (errdefs.Conflict)"},
    "NetworkDisconnect": {400: _BAD},
    "NetworkList": {400: _BAD},
    "NetworkPrune": {400: _BAD},
    "SystemDataUsage": {400: "400: an unknown object type"},
    "VolumeCreate": {400: _BAD, 404: "404: an unknown volume driver (plugin not found)",
                     409: "409: the volume exists with other options, or a cluster volume"},
    "VolumeList": {400: _BAD},
    "VolumePrune": {400: _BAD, 409: "409: a prune is already running"},
    "SystemAuth": {400: _BAD},
    # swarm mode is one node serving swarm-scoped networks: joining, autolock,
    # a certificate authority, services, secrets and configs are refused
    # (dockerd would do them); bad filters are 400 on every list, and so are
    # removing the swarm's last manager and unlocking a swarm that is not
    # locked (dockerd's FailedPrecondition and InvalidParameter)
    "SwarmInit": {501: _NOT_DONE},
    "SwarmJoin": {501: _NOT_DONE},
    "SwarmUpdate": {501: _NOT_DONE},
    "SwarmUnlock": {400: _BAD},
    "NodeDelete": {400: "400: the node is the swarm's last manager (FailedPrecondition)"},
    "NodeList": {400: _BAD},
    "ServiceList": {400: _BAD},
    "ServiceCreate": {501: _NOT_DONE},
    "TaskList": {400: _BAD},
    "SecretList": {400: _BAD},
    "SecretCreate": {400: _BAD, 501: _NOT_DONE},
    "ConfigList": {400: _BAD},
    "ConfigCreate": {400: _BAD, 501: _NOT_DONE},
}


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object under a node of the description."""
    if isinstance(node, dict):
        if "type" in node or "properties" in node or "items" in node:
            yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _go_nil_is_null(spec: dict[str, Any]) -> None:
    """dockerd is written in Go, whose JSON encoder writes an empty (nil)
    slice or map as `null`: `"Aliases": null`, `"Changes": null`,
    `{"ContainersDeleted": null}` of a prune that removed nothing.  The
    description marks few of them `x-nullable`; every array and object may
    be null here, as it may be in dockerd's answers.  Values that are there
    are still held to their types."""
    for node in _schemas([spec.get("definitions"), spec.get("paths")]):
        if node.get("type") in ("array", "object") and "in" not in node:
            node["x-nullable"] = True


def _bool_query_is_any_string(spec: dict[str, Any]) -> None:
    """dockerd reads every boolean query parameter with httputils.BoolValue:
    any value is true but "", "0", "no", "false" and "none", so `?all=null`
    is `all=true`, not an invalid request.  These parameters are strings
    here; the generator still sends true and false among the others."""
    for item in spec["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for p in op.get("parameters", []):
                if p.get("in") == "query" and p.get("type") == "boolean":
                    p["type"] = "string"
                    p.pop("default", None)


# Scalars dockerd keeps behind a Go pointer, so null when unset.
NULLABLE_SCALARS: dict[tuple[str, ...], str] = {
    ("paths", "/exec/{id}/json", "get", "responses", 200, "schema", "properties", "ExitCode"):
        "an exec's exit code is *int in dockerd: null while it runs",
}


def patch_spec(spec: dict[str, Any]) -> None:
    _go_nil_is_null(spec)
    for where in NULLABLE_SCALARS:
        node: Any = spec
        for key in where:
            node = node[key]
        node["x-nullable"] = True
    _bool_query_is_any_string(spec)
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") in EXTRA_STATUSES:
                for status in EXTRA_STATUSES[op["operationId"]]:
                    op["responses"].setdefault(status, {
                        "description": "as dockerd answers",
                        "schema": {"$ref": "#/definitions/ErrorResponse"},
                    })


# -- rules on single failures

SWARM_OPERATIONS = frozenset({
    "SwarmInit", "SwarmJoin", "SwarmInspect", "SwarmLeave", "SwarmUpdate", "SwarmUnlockkey", "SwarmUnlock",
    "NodeList", "NodeInspect", "NodeDelete", "NodeUpdate",
    "ServiceList", "ServiceCreate", "ServiceInspect", "ServiceDelete", "ServiceUpdate",
    "ServiceLogs", "TaskList", "TaskInspect", "TaskLogs",
    "SecretList", "SecretCreate", "SecretInspect", "SecretDelete", "SecretUpdate",
    "ConfigList", "ConfigCreate", "ConfigInspect", "ConfigDelete", "ConfigUpdate"})


REGISTRY_OPERATIONS = frozenset({"ImageCreate", "ImagePush", "SystemAuth",
                                 "DistributionInspect"})


def _is_error_json(response: schemathesis.Response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("message"), str)


def _content_type(response: schemathesis.Response) -> str:
    values = response.headers.get("content-type") or [""]
    return values[0].split(";")[0].strip().lower()


def allowed(op_id: str, check: str, case: schemathesis.Case, response: schemathesis.Response,
            failure: Failure) -> bool:
    status = response.status_code
    # an id prefix that names several containers or images is an invalid
    # parameter in dockerd (ErrAmbiguousPrefix), 400, on every route
    if check == "status_code_conformance" and status == 400 and \
            b"multiple IDs found with provided prefix" in response.content:
        return True
    if check == "content_type_conformance":
        # dockerd's errors are JSON {"message": ...} whatever the operation
        # produces when it succeeds (httputils.WriteJSON in makeErrorHandler)
        if status >= 400 and _content_type(response) == "application/json" and \
                _is_error_json(response):
            return True
        # an answer without a body has no content type (Go's net/http sets
        # one only when a body is written): 204s, a resize's empty 200
        if not response.content and not response.headers.get("content-type"):
            return True
        # GET /events answers application/json up to API 1.51, the version
        # dockyard speaks; x-ndjson and jsonl came with later versions
        if op_id == "SystemEvents" and _content_type(response) == "application/json":
            return True
        # a container's export is a tar, and dockerd says so
        # (Content-Type: application/x-tar in getContainersExport)
        if op_id == "ContainerExport" and _content_type(response) == "application/x-tar":
            return True
    # 501 is how the engine says it does not do a documented part of an
    # operation (NotImplementedByEngine): only where EXTRA_STATUSES says so,
    # and with a message; the report lists each such answer
    if check == "not_a_server_error" and status == 501 and \
            501 in EXTRA_STATUSES.get(op_id, {}) and _is_error_json(response):
        return True
    # swarm mode on a standalone engine: dockerd answers every swarm, node,
    # service, task, secret and config request with 503 ("This node is not a
    # swarm manager...", "This node is not part of a swarm"), as the
    # description documents for each of them; and once a fuzzed init made a
    # swarm, another init or a join is 503 "already part of a swarm"
    if check == "not_a_server_error" and status == 503 and op_id in SWARM_OPERATIONS and \
            _is_error_json(response) and b"swarm" in response.content:
        return True
    # only cluster volumes are updated, and they need swarm mode: a
    # standalone dockerd answers 503 ("volume update only valid for cluster
    # volumes, but swarm is unavailable"), a status the description lists
    if check == "not_a_server_error" and status == 503 and op_id == "VolumeUpdate" and \
            _is_error_json(response) and b"swarm is unavailable" in response.content:
        return True
    # a registry that cannot be reached is a 500 in dockerd (errdefs.Unknown:
    # `Get "https://registry-1.docker.io/v2/": dial tcp: ...`); the lane's
    # daemon sends registry traffic to a proxy that refuses every connection
    # (DAEMON_ENV in tests/integration/conftest.py), so a pull, push, login or
    # distribution inspect of a name on another host ends so, and nothing
    # leaves the machine
    if check == "not_a_server_error" and status == 500 and op_id in REGISTRY_OPERATIONS and \
            _is_error_json(response) and b"dial tcp" in response.content:
        return True
    if check == "negative_data_rejection" and _go_reading_accepts(case, failure):
        return True
    # dockerd reads an update body with httputils.ReadJSON, which takes an
    # empty body as an empty update ("an empty body is not invalid"): 200
    if check == "negative_data_rejection" and op_id == "ContainerUpdate" and \
            not response.request.body and status == 200:
        return True
    # the same ReadJSON reads a volume create: no body is an anonymous volume
    if check == "negative_data_rejection" and op_id == "VolumeCreate" and \
            not response.request.body and status == 201:
        return True
    if check == "unsupported_method":
        # dockerd's router answers a method it has no route for as it
        # answers an unknown path: 404 {"message":"page not found"}
        # (MethodNotAllowedHandler = notFoundHandler), and OPTIONS on any
        # path with an empty 200 (the system router's optionsHandler)
        if status == 404 and _is_error_json(response):
            return True
        if case.method.upper() == "OPTIONS" and status == 200 and not response.content:
            return True
    return False


_QUERY_PARAM = re.compile(r"parameter `([^`]+)` in query")
_BECAME = re.compile(r"\(was \w+, became (\w+)\)")
_BODY_TYPE = re.compile(r"in body - (\w+): Incorrect type")


def _first_wire_value(value: object) -> str:
    """What Go's r.Form.Get reads of a generated query value: the first of
    several (a list is sent as repeated parameters, a dict as its keys)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    if isinstance(value, dict):
        return str(next(iter(value), ""))
    return "" if value is None else str(value)


def _go_reading_accepts(case: schemathesis.Case, failure: Failure) -> bool:
    """Invalid input that dockerd's Go code reads as valid:

    - a query parameter is read with r.Form.Get, the first value only, and
      an empty value is "not given" (`if v := r.Form.Get(k); v != ""`), so
      `?condition=` or `?limit=&limit=x` ask for the defaults;
    - `null` in a JSON body is Go's "leave the zero value" for any field
      (encoding/json ignores a null for a string, a number, a bool), so a
      body whose only violations are values that became null decodes as
      one without them."""
    m = _QUERY_PARAM.search(failure.message)
    if m and isinstance(case.query, dict) and m.group(1) in case.query and \
            _first_wire_value(case.query[m.group(1)]) == "":
        return True
    m = _BODY_TYPE.search(failure.message)
    if m and isinstance(case.body, dict):
        field = {k.lower(): k for k in case.body}.get(m.group(1).lower())
        if field is not None and case.body[field] is None:
            return True
    became = _BECAME.findall(failure.message)
    return bool(became) and all(kind == "null" for kind in became) and \
        "in body" in failure.message


def unimplemented_ok(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """OPTIONS on any path, implemented or not, answers an empty 200 in
    dockerd (its optionsHandler route is `/{anyroute:.*}`)."""
    return case.method.upper() == "OPTIONS" and response.status_code == 200 and \
        not response.content
