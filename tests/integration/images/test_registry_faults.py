"""Pulls through a proxy that misbehaves as real networks and registries do
(faultproxy.py): a connection dropped in the middle of a blob is resumed
with a Range request, a blob download redirected to another host gets no
Authorization header, layers already here are not fetched again, at most
three layers download at once, and blobs with other bytes than their
digest's, blobs cut short and manifests that are no JSON are refused
without leaving anything in the store."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.images.conftest import PASSWORD, USER
from tests.integration.images.faultproxy import FaultProxy
from tests.integration.images.registries import (
    Registry,
    busybox_layer,
    image_layer,
    push_image,
)


def _repo() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


def _store_state(daemon) -> tuple[list[str], ...]:
    root = daemon.data_root / "images"
    return tuple(sorted(p.name for p in (root / sub).iterdir())
                 for sub in ("layers", "blobs/sha256", "tmp"))


def _blob_digest(reg: Registry, repo: str, tag: str, index: int) -> str:
    _s, _h, body = reg.get(f"/v2/{repo}/manifests/{tag}", {
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json"})
    return str(json.loads(body)["layers"][index]["digest"])


@pytest.fixture(scope="module")
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(registry).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def faults(proxy: FaultProxy) -> Iterator[FaultProxy]:
    proxy.reset()
    yield proxy
    proxy.reset()


def test_dropped_connection_resumes_with_range(daemon, client, registry, faults):
    repo = _repo()
    payload = random.Random(7).randbytes(3 << 20)          # incompressible: a 3 MiB blob
    push_image(registry, repo, "1", [busybox_layer(),
                                     image_layer({"data/blob": payload})],
               compress="none", media="oci", cmd=["/bin/busybox", "sha256sum", "/data/blob"])
    digest = _blob_digest(registry, repo, "1", 1)
    faults.faults.drop_blob_once[digest] = 1_500_000
    ref = f"{faults.host}/{repo}:1"
    records = list(client.api.pull(f"{faults.host}/{repo}", tag="1", stream=True,
                                   decode=True))
    assert "error" not in records[-1], records[-1]
    gets = faults.blob_gets(digest)
    assert len(gets) == 2, gets
    assert "Range" not in gets[0].headers
    assert gets[1].headers.get("Range") == "bytes=1500000-"
    assert any(r.get("status", "").startswith("Retrying in") for r in records)
    # every byte arrived: the file in the container is the one pushed
    out = daemon.out("run", "--rm", ref)
    assert out.split()[0] == hashlib.sha256(payload).hexdigest()
    daemon.out("rmi", ref)


def test_layers_already_here_are_not_fetched(client, registry, faults):
    repo = _repo()
    base = image_layer({"base/file": random.Random(1).randbytes(200_000)})
    push_image(registry, repo, "a", [base])
    push_image(registry, repo, "b", [base, image_layer({"top/file": b"top\n"})])
    base_digest = _blob_digest(registry, repo, "a", 0)
    name = f"{faults.host}/{repo}"
    client.images.pull(name, "a")
    assert len(faults.blob_gets(base_digest)) == 1
    records = list(client.api.pull(name, tag="b", stream=True, decode=True))
    assert len(faults.blob_gets(base_digest)) == 1          # not again
    assert [r["id"] for r in records if r.get("status") == "Already exists"] == \
        [base_digest[7:19]]
    # an image already complete here fetches no blob at all
    before = len(faults.blob_gets())
    records = list(client.api.pull(name, tag="b", stream=True, decode=True))
    assert records[-1]["status"] == f"Status: Image is up to date for {name}:b"
    assert len(faults.blob_gets()) == before
    client.images.remove(f"{name}:a")
    client.images.remove(f"{name}:b")


def test_three_layers_download_at_once(client, registry, faults):
    repo = _repo()
    layers = [image_layer({f"l{i}": random.Random(i).randbytes(50_000)}) for i in range(6)]
    push_image(registry, repo, "1", layers)
    faults.faults.blob_delay = 0.6
    name = f"{faults.host}/{repo}"
    records = list(client.api.pull(name, tag="1", stream=True, decode=True))
    assert "error" not in records[-1]
    assert faults.max_inflight == 3
    assert any(r.get("status") == "Waiting" for r in records)
    client.images.remove(f"{name}:1")


def test_redirected_blob_gets_no_authorization(reg_dir, client):
    """A blob GET answered with a redirect to another host (a CDN) follows
    it without the registry's credentials."""
    reg = Registry(reg_dir / "redirect", htpasswd=(USER, PASSWORD)).start()
    proxy = FaultProxy(reg).start()
    try:
        repo = _repo()
        push_image(reg, repo, "1", [image_layer({"r": random.Random(3).randbytes(100_000)})])
        proxy.faults.redirect_blobs = True
        name = f"{proxy.host}/{repo}"
        img = client.images.pull(name, "1", auth_config={"username": USER,
                                                          "password": PASSWORD})
        assert f"{name}:1" in img.tags
        manifests = [s for s in proxy.seen if "/manifests/" in s.path]
        assert manifests and all(s.headers.get("Authorization", "").startswith("Basic ")
                                 for s in manifests)
        # the config and the layer, each redirected, neither with credentials
        assert len(proxy.cdn_seen) == 2
        assert not [s for s in proxy.cdn_seen if "Authorization" in s.headers]
        client.images.remove(f"{name}:1")
    finally:
        proxy.stop()
        reg.stop()


@pytest.mark.parametrize("fault", ["corrupt", "short"])
def test_bad_blob_leaves_nothing(daemon, registry, faults, fault):
    repo = _repo()
    push_image(registry, repo, "1", [image_layer({"ok": b"fine" * 1000}),
                                     image_layer({"bad": random.Random(5).randbytes(60_000)})])
    digest = _blob_digest(registry, repo, "1", 1)
    getattr(faults.faults, f"{fault}_blobs").add(digest)
    before = _store_state(daemon)
    res = daemon.docker("pull", f"{faults.host}/{repo}:1")
    assert res.returncode == 1
    assert f"filesystem layer verification failed for digest {digest}" in res.stderr.decode()
    assert _store_state(daemon) == before
    res = daemon.docker("image", "inspect", f"{faults.host}/{repo}:1")
    assert res.returncode == 1


def test_garbage_manifest(daemon, registry, faults):
    repo = _repo()
    push_image(registry, repo, "1", [image_layer({"x": b"x"})])
    faults.faults.garbage_manifests.add("1")
    before = _store_state(daemon)
    res = daemon.docker("pull", f"{faults.host}/{repo}:1")
    assert res.returncode == 1
    assert ("unsupported manifest media type and no default available: text/html"
            in res.stderr.decode())
    assert _store_state(daemon) == before


def test_push_chunked_layers_monolithic_config(daemon, client, registry, faults):
    """A layer bigger than a chunk goes up in several PATCHes with
    Content-Range, the config in one PUT; the image pulls back with the
    digest the push reported, every byte intact."""
    repo, target = _repo(), _repo()
    payload = random.Random(11).randbytes(12 << 20)
    push_image(registry, repo, "1", [busybox_layer(), image_layer({"big": payload})],
               cmd=["sha256sum", "/big"])
    client.images.pull(f"{registry.host}/{repo}", "1")
    ref = f"{faults.host}/{target}:1"
    daemon.out("tag", f"{registry.host}/{repo}:1", ref)
    out = daemon.out("push", ref)
    digest = next(x for x in out.splitlines() if x.startswith("1: digest:")).split()[2]
    patches = [s for s in faults.seen if s.method == "PATCH"]
    assert len(patches) >= 2, [s.path for s in faults.seen]
    assert all(p.headers.get("Content-Range") for p in patches)
    assert patches[0].headers["Content-Range"].startswith("0-")
    config = client.images.get(ref).id
    puts = [s for s in faults.seen if s.method == "PUT" and f"digest={config}" in
            s.path.replace("%3A", ":")]
    assert len(puts) == 1 and int(puts[0].headers["Content-Length"]) > 0
    daemon.out("rmi", ref, f"{registry.host}/{repo}:1")
    out = daemon.out("pull", ref)
    assert f"Digest: {digest}" in out
    assert daemon.out("run", "--rm", ref).split()[0] == hashlib.sha256(payload).hexdigest()
    daemon.out("rmi", ref)


def test_client_leaving_cancels_the_pull(daemon, client, registry, faults):
    """A client that goes away mid-pull stops it: no blob is asked for after
    that, what it staged is removed and no image is left."""
    repo = _repo()
    push_image(registry, repo, "1", [image_layer({f"c{i}": random.Random(i).randbytes(40_000)})
                                     for i in range(4)])
    faults.faults.blob_delay = 1.5               # the config blob is on its way
    before = _store_state(daemon)
    api = client.api
    resp = api._post(api._url("/images/create"), params={"fromImage": f"{faults.host}/{repo}",
                                                        "tag": "1"}, stream=True)
    assert resp.status_code == 200
    assert b"Pulling from" in next(resp.iter_lines())
    resp.close()                                   # the client leaves
    # a pull that went on would ask for the 4 layers once the config came
    time.sleep(4)
    assert len(faults.blob_gets()) == 1            # the config only
    assert _store_state(daemon) == before
    res = daemon.docker("image", "inspect", f"{faults.host}/{repo}:1")
    assert res.returncode == 1


def test_two_pulls_of_one_image_at_once(daemon, registry):
    import concurrent.futures

    repo = _repo()
    push_image(registry, repo, "1", [image_layer({f"p{i}": random.Random(i).randbytes(300_000)})
                                     for i in range(3)])
    ref = f"{registry.host}/{repo}:1"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: daemon.docker("pull", ref), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert len(json.loads(daemon.out("image", "inspect", ref))) == 1
    daemon.out("rmi", ref)
    root = daemon.data_root / "images"
    assert list((root / "tmp").iterdir()) == []
