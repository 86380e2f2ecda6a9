"""`docker login` and `GET /distribution/{name}/json`: questions to a
registry that change nothing here.

Login is dockerd's loginV2: ping `/v2/` (never a mirror: credentials are
the registry's), then prove the credentials the way the registry asks for
them (basic auth on `/v2/`, or a token from the token server with
`offline_token=true`, whose refresh token becomes the IdentityToken the
CLI stores).  A registry that asks for nothing accepts any login, as with
dockerd.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import DockyardError, Unauthorized
from dockyard.images.distribution import manifest as mf
from dockyard.images.distribution.auth import AuthConfig
from dockyard.images.distribution.client import (
    RepositoryClient,
    Transport,
    transport_errors,
)
from dockyard.images.distribution.errors import (
    CredentialsRefused,
    RegistryHTTPError,
    RegistryUnreachable,
    pull_error,
    status_text,
)
from dockyard.images.distribution.hosts import INDEX_NAME, RegistryHosts
from dockyard.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, Reference

INDEX_SERVER = "https://index.docker.io/v1/"


def registry_host(server_address: str) -> str:
    """dockerd's ConvertToHostname, with Docker Hub's names as docker.io."""
    host = server_address or INDEX_SERVER
    for scheme in ("http://", "https://"):
        host = host.removeprefix(scheme)
    host = host.split("/", 1)[0]
    if host in (LEGACY_DEFAULT_DOMAIN, DEFAULT_DOMAIN, "registry-1.docker.io"):
        return INDEX_NAME
    return host


async def login(transport: Transport, hosts: RegistryHosts, creds: AuthConfig
                ) -> dict[str, Any]:
    host = registry_host(creds.server_address)
    last: DockyardError | None = None
    for ep in hosts.push_endpoints(host):
        url = f"{ep.url}/v2/"
        transport.forget_challenges(ep)
        try:
            challenges = await transport.challenges(ep)
        except RegistryUnreachable as e:
            last = e
            continue
        token = ""
        headers: dict[str, str] = {}
        for ch in challenges:
            if ch.scheme == "bearer":
                try:
                    tok = await transport.token(ep, ch, [], creds, offline=True, fresh=True)
                except CredentialsRefused as e:
                    raise Unauthorized(f'Get "{url}": {e}') from None
                headers["Authorization"] = f"Bearer {tok.value}"
                token = tok.refresh_token
                break
            if ch.scheme == "basic":
                if not (creds.username or creds.password):
                    raise Unauthorized("no basic auth credentials")
                repo = RepositoryClient(transport, ep, "", creds)
                headers["Authorization"] = await repo.basic_header()
                break
        try:
            resp = await transport.client(ep).get(url, headers=headers)
        except transport_errors() as e:
            last = transport.error("GET", url, e)
            continue
        if resp.status_code != 200:
            raise Unauthorized(f"login attempt to {url} failed with status: "
                               f"{status_text(resp.status_code)}")
        return {"Status": "Login Succeeded", "IdentityToken": token}
    assert last is not None
    raise last


async def inspect_remote(transport: Transport, hosts: RegistryHosts, ref: Reference,
                         creds: AuthConfig) -> dict[str, Any]:
    """dockerd's fetchManifest: the manifest's descriptor and its platforms
    (an index's entries', or a Docker schema 2 manifest's config's)."""
    ref = ref.with_default_tag()
    last: DockyardError | None = None
    for ep in hosts.pull_endpoints(ref.domain):
        repo = RepositoryClient(transport, ep, ref.path, creds)
        try:
            return await _inspect(repo, ref)
        except RegistryUnreachable as e:
            last = e
        except DockyardError as e:
            if not ep.mirror:
                raise
            last = e
    assert last is not None
    raise last


async def _inspect(repo: RepositoryClient, ref: Reference) -> dict[str, Any]:
    url = f"{repo.base}/manifests/{ref.digest or ref.tag}"
    try:
        resp = await repo.request("GET", url, {"Accept": ", ".join(mf.ACCEPT)})
    except RegistryHTTPError as e:
        raise pull_error(e, ref.familiar_name, ref.familiar()) from None
    body = resp.content
    if ref.digest and mf.digest_of(ref.digest, body) != ref.digest:
        raise RegistryUnreachable(f"manifest verification failed for digest {ref.digest}")
    parsed = mf.parse_manifest(body, resp.headers.get("content-type", ""), str(ref))
    desc = {"mediaType": parsed.media_type, "digest": ref.digest or mf.sha256_digest(body),
            "size": len(body)}
    platforms: list[dict[str, Any]] = []
    if isinstance(parsed, mf.Index):
        platforms = mf.index_platforms(parsed)
    elif parsed.media_type == mf.DOCKER_MANIFEST:
        try:
            cresp = await repo.request("GET", f"{repo.base}/blobs/{parsed.config.digest}")
            config = json.loads(cresp.content)
            if isinstance(config, dict):
                platforms = mf.config_platform(config)
        except (RegistryHTTPError, ValueError, RecursionError):
            pass                       # dockerd leaves Platforms empty then too
    return {"Descriptor": desc, "Platforms": platforms}
