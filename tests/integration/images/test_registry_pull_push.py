"""Issue 13: pull and push against a real registry (distribution 2.8 on
127.0.0.1, made by the tests), through the docker CLI and docker-py."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.images.registries import (
    busybox_layer,
    image_layer,
    push_image,
    push_index,
)


def _store_state(daemon) -> tuple[list[str], list[str], list[str]]:
    root = daemon.data_root / "images"
    return (sorted(p.name for p in (root / "layers").iterdir()),
            sorted(p.name for p in (root / "blobs" / "sha256").iterdir()),
            sorted(p.name for p in (root / "tmp").iterdir()))


def _repo() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


def test_push_rmi_pull_run(daemon, registry):
    """The issue's first acceptance line, with a tag of our own."""
    ref = f"{registry.host}/{_repo()}:1"
    daemon.out("tag", "busybox", ref)
    out = daemon.out("push", ref)
    assert f"The push refers to repository [{ref.rsplit(':', 1)[0]}]" in out
    assert "Pushed" in out or "Layer already exists" in out
    pushed = [line for line in out.splitlines() if line.startswith("1: digest: sha256:")]
    assert pushed, out
    digest = pushed[0].split()[2]
    daemon.out("rmi", ref)
    out = daemon.out("pull", ref)
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {ref}" in out
    assert daemon.out("run", "--rm", ref, "echo", "ok").strip() == "ok"
    digests = json.loads(daemon.out("image", "inspect", "--format", "{{json .RepoDigests}}",
                                    ref))
    assert f"{ref.rsplit(':', 1)[0]}@{digest}" in digests
    listing = daemon.out("images", "--digests", ref.rsplit(":", 1)[0])
    assert digest in listing
    # pulled again: nothing new
    out = daemon.out("pull", ref)
    assert f"Status: Image is up to date for {ref}" in out
    daemon.out("rmi", ref)


def test_progress_records_are_dockerds(client, registry):
    """docker-py's stream: per layer Pulling fs layer, Downloading with
    current/total, Verifying Checksum, Download complete, Extracting, Pull
    complete; then Digest and Status; a layer already here: Already exists."""
    repo = _repo()
    base = image_layer({"base/file": b"base" * 1000})
    top = image_layer({"top/file": b"top" * 300000})
    digest, _ = push_image(registry, repo, "a", [base])
    push_image(registry, repo, "b", [base, top])
    name = f"{registry.host}/{repo}"
    records = list(client.api.pull(name, tag="a", stream=True, decode=True))
    assert records[0] == {"status": "Pulling from " + repo, "id": "a"}
    statuses = [r["status"] for r in records if r.get("id") and r["id"] != "a"]
    assert statuses[0] == "Pulling fs layer"
    for s in ("Downloading", "Verifying Checksum", "Download complete", "Extracting",
              "Pull complete"):
        assert s in statuses, statuses
    downloading = [r for r in records if r.get("status") == "Downloading"]
    assert downloading[-1]["progressDetail"]["current"] == \
        downloading[-1]["progressDetail"]["total"]
    assert {"status": f"Digest: {digest}"} in records
    assert records[-1] == {"status": f"Status: Downloaded newer image for {name}:a"}
    records = list(client.api.pull(name, tag="b", stream=True, decode=True))
    already = [r for r in records if r.get("status") == "Already exists"]
    assert len(already) == 1
    assert [r for r in records if r.get("status") == "Pull complete"]
    client.images.remove(f"{name}:a")
    client.images.remove(f"{name}:b")


def test_pull_by_digest_and_all_tags(daemon, client, registry):
    repo = _repo()
    layer = image_layer({"x": b"by digest"})
    digest, cfg = push_image(registry, repo, "one", [layer])
    push_image(registry, repo, "two", [image_layer({"y": b"other"})])
    name = f"{registry.host}/{repo}"
    out = daemon.out("pull", f"{name}@{digest}")
    assert f"Status: Downloaded newer image for {name}@{digest}" in out
    img = client.images.get(f"{name}@{digest}")
    assert img.id == cfg
    assert f"{name}@{digest}" in img.attrs["RepoDigests"]
    assert img.attrs["RepoTags"] == []
    out = daemon.out("pull", "--all-tags", name)
    assert f"Status: Downloaded newer image for {name}" in out
    tags = {t for i in client.images.list(name) for t in i.tags}
    assert tags == {f"{name}:one", f"{name}:two"}
    images = client.images.pull(name, all_tags=True)
    assert {t for i in images for t in i.tags} == tags
    for t in sorted(tags):
        client.images.remove(t)
    # as dockerd: the last tag of a repository takes its digest references along
    assert client.images.list(name) == []


def test_unknown_tag_and_repository(daemon, registry):
    repo = _repo()
    push_image(registry, repo, "1", [image_layer({"a": b"a"})])
    res = daemon.docker("pull", f"{registry.host}/{repo}:nope")
    assert res.returncode == 1
    assert (f"manifest for {registry.host}/{repo}:nope not found: manifest unknown: "
            "manifest unknown") in res.stderr.decode()
    res = daemon.docker("pull", f"{registry.host}/no/such-repo")
    assert res.returncode == 1
    # distribution 2.8 answers an unknown repository's manifest as unknown
    assert (f"manifest for {registry.host}/no/such-repo:latest not found: manifest unknown: "
            "manifest unknown") in res.stderr.decode()


@pytest.mark.parametrize(("query", "status", "text"), [
    ({"fromImage": "a//b"}, 400, "invalid reference format"),
    ({"fromImage": "busybox", "tag": "bad tag"}, 400, "invalid tag format"),
    ({"fromImage": "busybox", "tag": "sha256:123"}, 400, "invalid tag format"),
    ({"fromImage": "busybox", "platform": "foobar"}, 400,
     '"foobar": unknown operating system or architecture: invalid argument'),
    ({"fromImage": "scratch"}, 403, "'scratch' is a reserved name"),
])
def test_bad_pull_requests(client, query, status, text):
    api = client.api
    resp = api._post(api._url("/images/create"), params=query)
    assert resp.status_code == status
    assert text in resp.json()["message"]


def test_unreachable_registry(daemon):
    from tests.integration.images.registries import free_port

    port = free_port()
    res = daemon.docker("pull", f"127.0.0.1:{port}/x:1")
    assert res.returncode == 1
    assert (f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: '
            "connection refused") in res.stderr.decode()


def test_run_pulls_a_missing_image(daemon, registry):
    repo = _repo()
    push_image(registry, repo, "latest", [image_layer({"hello": b"hi\n"})], cmd=["true"])
    res = daemon.docker("create", f"{registry.host}/{repo}")
    assert res.returncode == 0, res.stderr
    assert f"Unable to find image '{registry.host}/{repo}:latest' locally" in \
        res.stderr.decode()
    daemon.docker("rm", res.stdout.decode().strip())
    daemon.out("rmi", f"{registry.host}/{repo}")


@pytest.mark.parametrize("oci", [False, True])
def test_multi_platform_index(daemon, client, registry, oci):
    repo = _repo()
    media = "oci" if oci else "docker"
    amd, _ = push_image(registry, repo, "amd", [image_layer({"arch": b"amd64"})],
                        media=media)
    arm, _ = push_image(registry, repo, "arm", [image_layer({"arch": b"arm64 bytes"})],
                        arch="arm64", variant="v8", media=media)
    push_index(registry, repo, "multi", [
        (amd, {"os": "linux", "architecture": "amd64"}),
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})], oci=oci)
    ref = f"{registry.host}/{repo}:multi"
    daemon.out("pull", "--platform", "linux/arm64", ref)
    assert daemon.out("image", "inspect", "--format", "{{.Architecture}}", ref).strip() == \
        "arm64"
    daemon.out("rmi", ref)
    daemon.out("pull", ref)
    assert daemon.out("image", "inspect", "--format", "{{.Architecture}}", ref).strip() == \
        "amd64"
    dist = client.api.inspect_distribution(ref)
    assert {"os": "linux", "architecture": "amd64"} in dist["Platforms"]
    assert {"os": "linux", "architecture": "arm64", "variant": "v8"} in dist["Platforms"]
    res = daemon.docker("pull", "--platform", "linux/s390x", ref)
    assert res.returncode == 1
    assert ("no matching manifest for linux/s390x in the manifest list entries"
            in res.stderr.decode())
    daemon.out("rmi", ref)


def test_zstd_and_uncompressed_oci_layers(daemon, registry):
    repo = _repo()
    ref = f"{registry.host}/{repo}"
    bb = busybox_layer()
    push_image(registry, repo, "zstd", [bb, image_layer({"z/file": b"zstd data\n" * 1000})],
               compress="zstd", media="oci", cmd=["/bin/busybox", "cat", "/z/file"])
    push_image(registry, repo, "plain", [bb, image_layer({"p/file": b"plain data\n"})],
               compress="none", media="oci", cmd=["/bin/busybox", "cat", "/p/file"])
    daemon.out("pull", f"{ref}:zstd")
    daemon.out("pull", f"{ref}:plain")
    assert daemon.out("run", "--rm", f"{ref}:zstd").startswith("zstd data\n")
    assert daemon.out("run", "--rm", f"{ref}:plain") == "plain data\n"
    daemon.out("rmi", f"{ref}:zstd", f"{ref}:plain")


def test_push_mounts_and_reuses_blobs(daemon, registry):
    """A layer pulled from one repository is mounted into another of the
    same registry, and a second push finds every layer already there."""
    src, dst = _repo(), _repo()
    push_image(registry, src, "1", [image_layer({"m": b"mount me" * 1000})])
    daemon.out("pull", f"{registry.host}/{src}:1")
    daemon.out("tag", f"{registry.host}/{src}:1", f"{registry.host}/{dst}:1")
    out = daemon.out("push", f"{registry.host}/{dst}:1")
    assert f"Mounted from {registry.host}/{src}" in out, out
    out = daemon.out("push", f"{registry.host}/{dst}:1")
    assert "Layer already exists" in out, out
    daemon.out("rmi", f"{registry.host}/{src}:1", f"{registry.host}/{dst}:1")


def test_push_errors(daemon, registry):
    res = daemon.docker("push", f"{registry.host}/{_repo()}:nope")
    assert res.returncode == 1
    assert "tag does not exist" in res.stderr.decode() or \
        "An image does not exist locally" in res.stderr.decode()


def test_failed_pulls_leave_nothing(daemon, registry):
    """A layer whose bytes are not its digest's, and a config whose
    diff_ids do not match: an error, and no trace in the store."""
    repo = _repo()
    layer = image_layer({"bad": b"x" * 5000})
    _digest, _cfg = push_image(registry, repo, "ok", [layer])
    before = _store_state(daemon)
    # a manifest that names a blob with a wrong size
    _status, _h, body = registry.get(f"/v2/{repo}/manifests/ok", {
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    doc = json.loads(body)
    doc["layers"][0]["size"] += 1
    registry.put_manifest(repo, "badsize", json.dumps(doc).encode(), doc["mediaType"])
    res = daemon.docker("pull", f"{registry.host}/{repo}:badsize")
    assert res.returncode == 1
    assert "verification failed" in res.stderr.decode() or "size" in res.stderr.decode()
    # a config whose diff_id does not match the layer
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    cdigest = registry.put_blob(repo, cfg)
    doc = json.loads(body)
    doc["config"] = {"mediaType": doc["config"]["mediaType"], "size": len(cfg),
                     "digest": cdigest}
    registry.put_manifest(repo, "baddiff", json.dumps(doc).encode(), doc["mediaType"])
    res = daemon.docker("pull", f"{registry.host}/{repo}:baddiff")
    assert res.returncode == 1
    assert "does not match its diff_id" in res.stderr.decode()
    assert _store_state(daemon) == before


def test_registry_traffic_goes_through_the_proxy(daemon):
    """The test daemons run with HTTP(S)_PROXY set to a port that refuses
    connections: a Docker Hub name goes there (and fails at once), loopback
    registries do not; /info shows the proxies as dockerd does."""
    from tests.integration.conftest import NO_EXIT_PROXY

    info = json.loads(daemon.out("info", "--format", "{{json .}}"))
    assert (info["HttpProxy"], info["HttpsProxy"], info["NoProxy"]) == \
        (NO_EXIT_PROXY, NO_EXIT_PROXY, "198.18.0.0/15")
    res = daemon.docker("pull", f"dockyard-test/{uuid.uuid4().hex[:8]}")
    assert res.returncode == 1
    assert ('Get "https://registry-1.docker.io/v2/": proxyconnect tcp: dial tcp '
            f'{NO_EXIT_PROXY.removeprefix("http://")}: connect: connection refused'
            in res.stderr.decode()), res.stderr.decode()
