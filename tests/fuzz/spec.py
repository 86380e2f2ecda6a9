"""Docker's Engine API description as the fuzz lane uses it.

`docker-engine-api.swagger.yaml` beside this file is Docker's own Swagger 2.0
description of the Engine API (v1.56), unchanged.  The lane loads it, points
its base path at the API root (dockyard serves every route with and without
a `/vX.Y` prefix, up to 1.51), and adds links between operations so the
stateful run reaches real containers, execs and images.

Which operations dockyard claims is read from dockyard's own router, not
written down here: an operation is claimed when the router has a handler for
its method and path.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from dockyard.api.app import build_router
from tests.fuzz import allowances

SPEC_PATH = Path(os.environ.get("DOCKYARD_FUZZ_SPEC",
                                Path(__file__).with_name("docker-engine-api.swagger.yaml")))
BASE_URL = "http://dockyard"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@cache
def raw_spec() -> dict[str, Any]:
    with open(SPEC_PATH, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def operations(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(METHOD, path, operationId) of every documented operation."""
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                out.append((method.upper(), path, op["operationId"]))
    return out


@cache
def claimed() -> frozenset[str]:
    """operationIds that dockyard's router has a handler for."""
    stub = SimpleNamespace(system=None, images=None, containers=None, execs=None, networks=None,
                           volumes=None, build=None, swarm=None)
    router = build_router(stub)  # type: ignore[arg-type]
    ids = set()
    for method, path, op_id in operations(raw_spec()):
        concrete = path.replace("{id}", "x").replace("{name}", "x")
        handler, _params, _known = router.match(method, concrete)
        if handler is not None:
            ids.add(op_id)
    return frozenset(ids)


def unclaimed() -> list[tuple[str, str, str]]:
    return sorted((op for op in operations(raw_spec()) if op[2] not in claimed()),
                  key=lambda op: (op[1], op[0]))


# Links for the stateful run: what an operation's answer names, and the
# operations that take it.  Docker's description has none; these follow
# the API's resources: a created container, an exec, a committed image.
_CONTAINER_OPS = (
    "ContainerInspect", "ContainerTop", "ContainerLogs", "ContainerChanges", "ContainerExport",
    "ContainerStats", "ContainerResize", "ContainerStart", "ContainerStop", "ContainerRestart",
    "ContainerKill", "ContainerUpdate", "ContainerRename", "ContainerPause", "ContainerUnpause",
    "ContainerAttach", "ContainerWait", "ContainerDelete", "ContainerArchiveInfo",
    "ContainerArchive", "PutContainerArchive", "ContainerExec",
)
_EXEC_OPS = ("ExecStart", "ExecResize", "ExecInspect")
_IMAGE_OPS = ("ImageInspect", "ImageHistory", "ImageTag", "ImageDelete", "ImageGet")
LINKS: dict[tuple[str, int], tuple[tuple[str, ...], str, str]] = {
    # (producer, status): (consumers, parameter, where the value is in the answer)
    ("ContainerCreate", 201): (_CONTAINER_OPS, "id", "$response.body#/Id"),
    ("ContainerExec", 201): (_EXEC_OPS, "id", "$response.body#/Id"),
    ("ImageCommit", 201): (_IMAGE_OPS, "name", "$response.body#/Id"),
}


def fuzz_spec(json_bodies: bool = False) -> dict[str, Any]:
    """The description as the lane uses it: base path at the API root, the
    corrections of allowances.py, and links.  With `json_bodies`, an
    operation that takes JSON is sent JSON only (the stateful run wants its
    creates to create; the stateless run also sends them as other types)."""
    spec = copy.deepcopy(raw_spec())
    spec["basePath"] = "/"
    allowances.patch_spec(spec)
    if json_bodies:
        for item in spec["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and "application/json" in op.get("consumes", []):
                    op["consumes"] = ["application/json"]
    by_id = {op_id: (path, method.lower()) for method, path, op_id in operations(spec)}
    for (producer, status), (consumers, param, source) in LINKS.items():
        path, method = by_id[producer]
        response = spec["paths"][path][method]["responses"][status]
        links = response.setdefault("x-links", {})
        for consumer in consumers:
            links[consumer] = {"operationId": consumer, "parameters": {param: source}}
    return spec
