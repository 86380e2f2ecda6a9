"""`ContainerCreator`: `POST /containers/create`, from Docker's request to a record.

Checks the body's JSON types, merges the image's config, validates and
normalises the HostConfig with the pure `oci/` rules (Docker's texts),
then reserves the name, makes the container's directories and writes its
record.  Nothing is left behind when any step fails.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from dockyard.backend import CreateResult
from dockyard.engine.containers.names import generate_name, validate_name
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.logs.service import check_log_config
from dockyard.engine.networks.endpoints import ContainerNetworking
from dockyard.engine.volumes.mounts import ContainerMounts
from dockyard.errors import InvalidParameter, NotFound
from dockyard.images.service import ImageService
from dockyard.oci import validate
from dockyard.oci.normalize import command_of, normalize_host_config
from dockyard.oci.normalize import merge_image_config as merge_with_image
from dockyard.oci.options import refuse_unsupported
from dockyard.oci.schema import decode_create_request
from dockyard.util.fstree import remove_quietly

CONTAINER_SUBDIRS = ("upper", "work", "merged")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


class ContainerCreator:
    def __init__(self, store: ContainerStore, images: ImageService, host: HostEnv,
                 networking: ContainerNetworking, mounts: ContainerMounts) -> None:
        self.store = store
        self.images = images
        self.host = host
        self.networking = networking
        self.mounts = mounts

    async def create(self, body: Any, name: str | None, platform: str | None) -> CreateResult:
        if body is None:
            raise InvalidParameter("config cannot be empty in order to create a container")
        body = decode_create_request(body)
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = body.get("HostConfig") or {}
        networking = body.get("NetworkingConfig") or {}
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("config cannot be empty in order to create a container")
        if name:
            name = validate_name(name)
            self.store.check_name_free(name)
        image = self.images.get(image_ref)
        image_config = self.images.image_config(image.id)
        check_platform(platform, image_config, image_ref)
        merged = merge_image_config(config, image_config)
        host_config, warnings = self._prepare_host_config(merged, host_config, networking)
        refuse_unsupported(config, host_config, networking)
        networking = {**networking, "EndpointsConfig": self.networking.check_create(
            host_config, networking, merged)}
        check_log_config(host_config)
        plan = self.mounts.plan(merged, host_config)
        warnings += plan.warnings
        cid = self.store.new_id()
        name = name or generate_name(self.store.names_taken())
        if not merged.get("Hostname"):
            merged["Hostname"] = cid[:12]
        path, args = command_of(merged)
        c = Container(
            id=cid, name=name, created=time.time_ns(), image_ref=image_ref, image_id=image.id,
            config=merged, host_config=host_config, networking_config=networking,
            path=path, args=args, runtime=self.host.runtime(host_config.get("Runtime")).name,
            platform="linux", warnings=warnings,
        )
        # Taken before the first await, so a concurrent create cannot take it too.
        self.store.reserve_name(name, cid)
        made: list[str] = []
        try:
            self._make_dirs(c)          # five mkdirs: less than a thread's round trip
            made = await self.mounts.attach(c, plan)
            self.store.save_new(c)
        except BaseException:
            await self.mounts.undo(c, made)
            await asyncio.to_thread(remove_quietly, self.store.dir(c), "container directory")
            self.store.release_name(name, cid)
            raise
        self.store.add(c)
        self.mounts.attached(c)
        self.store.emit(c, "create")
        return CreateResult(cid, warnings)

    def _make_dirs(self, c: Container) -> None:
        d = self.store.dir(c)
        d.mkdir(mode=0o710)
        for sub in CONTAINER_SUBDIRS:
            (d / sub).mkdir(mode=0o755)

    def _prepare_host_config(self, config: dict[str, Any], host_config: dict[str, Any],
                             networking: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Docker's validation, then the normalised HostConfig inspect shows."""
        facts, opts = self.host.facts, self.host.options
        warnings = validate.validate_create(config, host_config, networking, facts, opts)
        hc = normalize_host_config(host_config, facts, opts)
        if hc.get("NetworkMode") == "host" and not config.get("Hostname"):
            # as dockerd's newContainer: a host-network container is named like the host
            config["Hostname"] = os.uname().nodename
        # as dockerd: an unknown container to share IPC or PID with is a 400
        # at create (a 404 would make the docker CLI try to pull the image);
        # one to share the network with is looked up at start
        for mode_key in ("IpcMode", "PidMode"):
            mode = hc.get(mode_key) or ""
            if mode.startswith("container:"):
                try:
                    self.store.get(mode.split(":", 1)[1])
                except NotFound as e:
                    raise InvalidParameter(e.message) from None
        return hc, warnings


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """Docker's merge of the request's Config with the image's, plus the
    defaults inspect shows for fields the request left out."""
    for item in config.get("Env") or []:
        if not isinstance(item, str) or item.split("=", 1)[0] == "":
            raise InvalidParameter(f"invalid environment variable: {item}")
    c = merge_with_image(config, image_config.get("config") or {})
    for key in ("Hostname", "Domainname", "User", "WorkingDir"):
        c.setdefault(key, "")
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                "StdinOnce"):
        c[key] = bool(c.get(key, False))
    if not c.get("StopSignal"):
        c.pop("StopSignal", None)
    for key in ("Cmd", "Entrypoint", "OnBuild", "Volumes"):
        c.setdefault(key, None)
    return c


def check_platform(platform: str | None, image_config: dict[str, Any], ref: str) -> None:
    """`--platform`: the image must match it (no pulling of other variants)."""
    if not platform:
        return
    parts = platform.lower().split("/")
    want_os = parts[0]
    want_arch = _ARCH_ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else ""
    want_variant = parts[2] if len(parts) > 2 else ""
    have_os = image_config.get("os", "linux")
    have_arch = image_config.get("architecture", "")
    have_variant = image_config.get("variant", "")
    if (want_os and want_os != have_os) or (want_arch and want_arch != have_arch) or (
            want_variant and have_variant and want_variant != have_variant):
        have = "/".join(x for x in (have_os, have_arch, have_variant) if x)
        raise NotFound(f"image with reference {ref} was found but "
                       f"does not match the specified platform: wanted {platform}, "
                       f"actual: {have}")
