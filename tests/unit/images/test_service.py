"""ImageService end to end on a temp data root: load, save, import, tag, rmi, list, prune."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from imgtestutil import chunks_of, legacy_archive, oci_archive, sha, simple_layer

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.images.service import ImageService

LAYER1 = simple_layer({"bin/hello": b"hello\n"})
LAYER2 = simple_layer({"etc/motd": b"welcome\n"})


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.events: list[tuple[str, str, dict[str, str]]] = []
        self.using: dict[str, list[tuple[str, bool]]] = {}
        self.svc = self.open()

    def open(self) -> ImageService:
        return ImageService(self.root, lambda a, i, at: self.events.append((a, i, at)),
                            lambda image_id: self.using.get(image_id, []))

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def load(self, data: bytes) -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            return [m async for m in self.svc.load(chunks_of(data))]
        return self.run(go())

    def save(self, names: list[str]) -> bytes:
        async def go() -> bytes:
            return b"".join([c async for c in self.svc.save(names)])
        return self.run(go())

    def import_(self, data: bytes, **kw: Any) -> str:
        async def go() -> list[dict[str, Any]]:
            return [m async for m in self.svc.import_image(chunks_of(data), **kw)]
        return self.run(go())[-1]["status"]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "data")


def test_load_legacy_archive(h: Harness) -> None:
    msgs = h.load(legacy_archive([LAYER1, LAYER2], ["foo:1", "foo/bar"]))
    assert msgs == [{"stream": "Loaded image: foo:1\n"}, {"stream": "Loaded image: foo/bar:latest\n"}]
    rec = h.svc.get("foo:1")
    assert rec.diff_ids == [sha(LAYER1), sha(LAYER2)]
    assert h.svc.get("foo/bar").id == rec.id
    dirs = h.svc.lower_dirs(rec.id)
    assert Path(dirs[0], "etc/motd").read_bytes() == b"welcome\n"       # top layer first
    assert Path(dirs[1], "bin/hello").read_bytes() == b"hello\n"
    assert [e[0] for e in h.events] == ["load"]
    info = h.svc.inspect("foo:1")
    assert info["Size"] == len(b"hello\n") + len(b"welcome\n")
    assert info["GraphDriver"]["Data"]["UpperDir"] == dirs[0]
    assert info["GraphDriver"]["Data"]["LowerDir"] == dirs[1]
    assert info["RepoTags"] == ["foo/bar:latest", "foo:1"]
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"


def test_load_gzip_layers_and_oci_layouts(h: Harness) -> None:
    h.load(legacy_archive([LAYER1], ["gz:1"], gzip_layers=True))
    assert h.svc.get("gz:1").diff_ids == [sha(LAYER1)]
    assert h.load(oci_archive([LAYER2], "docker.io/library/oci:1")) == [
        {"stream": "Loaded image: oci:1\n"}]
    assert h.load(oci_archive([LAYER1, LAYER2], "reg.example:5000/x/y:2", with_manifest_json=True,
                              gzip_layers=False)) == [
        {"stream": "Loaded image: reg.example:5000/x/y:2\n"}]
    untagged = h.load(oci_archive([LAYER2, LAYER1], None))
    assert untagged[0]["stream"].startswith("Loaded image ID: sha256:")


def test_layers_are_shared(h: Harness) -> None:
    h.load(legacy_archive([LAYER1], ["a:1"]))
    h.load(legacy_archive([LAYER1, LAYER2], ["b:1"]))
    a, b = h.svc.get("a:1"), h.svc.get("b:1")
    assert h.svc.lower_dirs(a.id)[0] == h.svc.lower_dirs(b.id)[1]
    assert len(os.listdir(h.root / "images/layers")) == 2


def test_failed_load_leaves_nothing(h: Harness) -> None:
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(LAYER1), "sha256:" + "0" * 64]},
                      "os": "linux"}).encode()
    with pytest.raises(InvalidParameter, match="invalid diffID for layer 1"):
        h.load(legacy_archive([LAYER1, LAYER2], ["bad:1"], config=cfg))
    assert os.listdir(h.root / "images/layers") == []
    assert os.listdir(h.root / "images/imagedb") == []
    assert os.listdir(h.root / "images/blobs/sha256") == []
    assert os.listdir(h.root / "images/tmp") == []
    with pytest.raises(InvalidParameter):
        h.load(b"this is not a tar")
    assert os.listdir(h.root / "images/tmp") == []


def test_save_load_round_trip_same_ids(h: Harness, tmp_path: Path) -> None:
    h.load(legacy_archive([LAYER1, LAYER2], ["foo:1", "foo:2"]))
    h.svc_id = h.svc.get("foo:1").id
    data = h.save(["foo"])                                    # a repo: all its tags
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer_shas = [sha(tf.extractfile(p).read()) for p in manifest[0]["Layers"]]  # type: ignore[union-attr]
        assert tf.extractfile("oci-layout") is not None
    assert sorted(manifest[0]["RepoTags"]) == ["foo:1", "foo:2"]
    assert layer_shas == [sha(LAYER1), sha(LAYER2)]            # tars hash to the diff_ids
    other = Harness(tmp_path / "other")
    msgs = other.load(data)
    assert {m["stream"] for m in msgs} == {"Loaded image: foo:1\n", "Loaded image: foo:2\n"}
    assert other.svc.get("foo:2").id == h.svc_id
    assert h.save(["foo:1"]) == h.save(["foo:1"])             # deterministic bytes


def test_save_unknown_name(h: Harness) -> None:
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        h.save(["nope"])


def test_import_with_changes(h: Harness) -> None:
    image_id = h.import_(simple_layer({"x": b"1"}), repo="imp", tag="v1", message="msg",
                         changes=['CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /bin/run now",
                                  'ENV A=1 B="two words"', "ENV LEGACY some value",
                                  "LABEL a=b", "EXPOSE 80 53/udp", "VOLUME /data",
                                  "WORKDIR /srv", "WORKDIR sub", "USER nobody",
                                  "STOPSIGNAL SIGINT", 'CMD ["x"]'])
    rec = h.svc.get("imp:v1")
    assert rec.id == image_id
    cfg = h.svc.image_config(rec.id)
    c = cfg["config"]
    assert c["Cmd"] == ["x"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/run now"]
    assert c["Env"] == ["A=1", "B=two words", "LEGACY=some value"]
    assert c["Labels"] == {"a": "b"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert c["WorkingDir"] == "/srv/sub"
    assert (c["User"], c["StopSignal"]) == ("nobody", "SIGINT")
    assert cfg["comment"] == "msg" and cfg["history"][0]["comment"] == "msg"
    assert [e[0] for e in h.events] == ["import", "tag"]
    with pytest.raises(InvalidParameter, match="from is not a valid change command"):
        h.import_(b"", changes=["FROM x"])


def test_import_gzip_and_default_message(h: Harness) -> None:
    import gzip
    layer = simple_layer({"y": b"2"})
    h.import_(gzip.compress(layer), repo="gz")
    rec = h.svc.get("gz")
    assert rec.diff_ids == [sha(layer)]
    assert rec.config["comment"] == "Imported from -"


def test_tag_and_lookup_errors(h: Harness) -> None:
    h.load(legacy_archive([LAYER1], ["foo:1"]))
    rec = h.svc.get("foo:1")
    h.run(h.svc.tag("foo:1", "localhost:5000/bar", "t"))
    assert h.svc.get("localhost:5000/bar:t").id == rec.id
    assert h.svc.get(rec.id[7:19]).id == rec.id                        # ID prefix
    assert h.svc.get(rec.id).id == rec.id
    with pytest.raises(NotFound, match="^No such image: busybox:latest$"):
        h.svc.get("busybox")
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        h.svc.get("Foo")
    with pytest.raises(InvalidParameter):
        h.run(h.svc.tag("foo:1", "bar", "bad tag"))


def test_rmi_semantics(h: Harness) -> None:
    h.load(legacy_archive([LAYER1], ["foo:1", "foo:2"]))
    rec = h.svc.get("foo:1")
    short = rec.id[7:19]
    with pytest.raises(Conflict, match=f"unable to delete {short} \\(must be forced\\) - "
                       "image is referenced in multiple repositories"):
        h.run(h.svc.remove(short))
    assert h.run(h.svc.remove("foo:1")) == [{"Untagged": "foo:1"}]
    h.using[rec.id] = [("c" * 64, False)]
    with pytest.raises(Conflict, match='unable to remove repository reference "foo:2" '
                       f"\\(must force\\) - container cccccccccccc is using its referenced "
                       f"image {short}"):
        h.run(h.svc.remove("foo:2"))
    h.using[rec.id] = [("d" * 64, True)]
    with pytest.raises(Conflict, match=f"unable to delete {short} \\(cannot be forced\\) - "
                       "image is being used by running container dddddddddddd"):
        h.run(h.svc.remove(rec.id, force=True))
    h.using[rec.id] = [("c" * 64, False)]
    # forced past a stopped container: untagged and gone from listings, layers kept
    out = h.run(h.svc.remove("foo:2", force=True))
    assert out[0] == {"Untagged": "foo:2"} and {"Deleted": rec.id} in out
    assert h.run(h.svc.list_images()) == []
    assert Path(h.svc.lower_dirs(rec.id)[0], "bin/hello").exists()
    h.using.clear()
    h.run(h.svc.prune())                                              # now collected
    assert os.listdir(h.root / "images/layers") == []


def test_rmi_by_id_deletes_layers(h: Harness) -> None:
    h.load(legacy_archive([LAYER1, LAYER2], ["foo:1"]))
    rec = h.svc.get("foo:1")
    out = h.run(h.svc.remove(rec.id[7:]))
    assert out[0] == {"Untagged": "foo:1"}
    assert out[1] == {"Deleted": rec.id}
    assert {"Deleted": rec.chain_ids[0]} in out and {"Deleted": rec.chain_ids[1]} in out
    assert [e[0] for e in h.events] == ["load", "untag", "delete"]
    # and the state survives a restart
    h.svc = h.open()
    assert h.run(h.svc.list_images()) == []


def test_list_filters(h: Harness) -> None:
    old = json.dumps({"created": "2020-01-01T00:00:00Z", "os": "linux",
                      "config": {"Labels": {"tier": "db"}},
                      "rootfs": {"type": "layers", "diff_ids": [sha(LAYER1)]}}).encode()
    h.load(legacy_archive([LAYER1], ["old:1"], config=old))
    h.load(legacy_archive([LAYER1, LAYER2], ["new:1", "other/new:2"]))
    h.load(oci_archive([LAYER2], None))
    names = lambda **f: sorted(t for i in h.run(h.svc.list_images(filters=f)) for t in i["RepoTags"])
    assert names() == ["new:1", "old:1", "other/new:2"]
    assert len(h.run(h.svc.list_images(filters={"dangling": ["true"]}))) == 1
    assert names(dangling=["false"]) == ["new:1", "old:1", "other/new:2"]
    assert names(reference=["new"]) == ["new:1"]
    assert names(reference=["*/new:*"]) == ["other/new:2"]
    assert names(label=["tier=db"]) == ["old:1"]
    assert names(**{"label!": ["tier"]}) == ["new:1", "other/new:2"]
    assert names(before=["new:1"]) == ["old:1"]
    assert names(since=["old:1"]) == ["new:1", "other/new:2"]
    assert names(until=["2021-01-01T00:00:00Z"]) == ["old:1"]
    with pytest.raises(InvalidParameter, match="^invalid filter 'x'$"):
        h.run(h.svc.list_images(filters={"x": ["1"]}))
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        h.run(h.svc.list_images(filters={"dangling": ["maybe"]}))


def test_prune(h: Harness) -> None:
    h.load(legacy_archive([LAYER1], ["keep:1"]))
    h.load(oci_archive([LAYER2], None))
    report = h.run(h.svc.prune({"dangling": ["true"]}))
    assert len([d for d in report["ImagesDeleted"] if "Deleted" in d]) == 2   # image + layer
    assert report["SpaceReclaimed"] == len(b"welcome\n")
    assert h.run(h.svc.prune()) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    h.using[h.svc.get("keep:1").id] = [("e" * 64, False)]
    assert h.run(h.svc.prune({"dangling": ["false"]}))["ImagesDeleted"] is None   # in use
    h.using.clear()
    report = h.run(h.svc.prune({"dangling": ["false"]}))
    assert {"Untagged": "keep:1"} in report["ImagesDeleted"]
    with pytest.raises(InvalidParameter, match="invalid filter 'reference'"):
        h.run(h.svc.prune({"reference": ["x"]}))


def test_history(h: Harness) -> None:
    h.load(legacy_archive([LAYER1, LAYER2], ["foo:1"]))
    hist = h.run(h.svc.history("foo:1"))
    assert [x["CreatedBy"] for x in hist] == ["layer 1", "layer 0"]
    assert hist[0]["Id"] == h.svc.get("foo:1").id and hist[0]["Tags"] == ["foo:1"]
    assert hist[1]["Id"] == "<missing>"
    assert hist[0]["Size"] == len(b"welcome\n")


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="no busybox-static")
def test_default_busybox_is_deterministic(h: Harness, tmp_path: Path) -> None:
    import time
    t0 = time.monotonic()
    image_id = h.run(h.svc.ensure_default_busybox())
    assert time.monotonic() - t0 < 1.0
    assert h.run(h.svc.ensure_default_busybox()) is None          # already there
    other = Harness(tmp_path / "other")
    assert other.run(other.svc.ensure_default_busybox()) == image_id
    rec = h.svc.get("busybox")
    top = Path(h.svc.lower_dirs(rec.id)[0])
    assert (top / "bin/sh").stat().st_ino == (top / "bin/busybox").stat().st_ino
    assert oct((top / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert "nobody:x:65534" in (top / "etc/passwd").read_text()
    assert rec.config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in rec.config["config"]["Env"])


@pytest.mark.parametrize(("data", "detail"), [
    (b"notatar\n", "unexpected EOF"),
    (b"x" * 1024, "archive/tar: invalid tar header"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage", None),
])
def test_import_of_garbage_is_a_client_error(h: Harness, data: bytes,
                                              detail: str | None) -> None:
    with pytest.raises(InvalidParameter) as ei:
        h.import_(data, repo="x")
    assert ei.value.status == 400
    assert ei.value.message.startswith("Error processing tar file(exit status 1): ")
    if detail:
        assert ei.value.message.endswith(detail)
    assert "Error:" not in ei.value.message and "LayerError" not in ei.value.message
    for d in ("layers", "imagedb", "blobs/sha256", "tmp"):
        assert os.listdir(h.root / "images" / d) == [], d
    assert h.svc.list_records() == [] and h.events == []


def test_load_progress_when_not_quiet(h: Harness) -> None:
    big = simple_layer({"big": os.urandom(300_000)})
    data = legacy_archive([LAYER1, big], ["foo:1"])

    async def go(quiet: bool) -> list[dict[str, Any]]:
        return [m async for m in h.svc.load(chunks_of(data), quiet)]
    msgs = h.run(go(False))
    assert msgs[-1] == {"stream": "Loaded image: foo:1\n"}
    progress = msgs[:-1]
    assert {m["status"] for m in progress} == {"Loading layer"}
    ids = list(dict.fromkeys(m["id"] for m in progress))
    assert ids == [sha(LAYER1)[7:19], sha(big)[7:19]]
    last = progress[-1]
    total = len(big)
    assert last["progressDetail"] == {"current": total, "total": total}
    assert total == 307_200
    assert last["progress"] == "[" + "=" * 50 + ">]  307.2kB/307.2kB"
    first_big = next(m for m in progress if m["id"] == ids[1])
    assert first_big["progressDetail"] == {"current": 32768, "total": total}
    assert first_big["progress"] == "[=====>" + " " * 45 + "]  32.77kB/307.2kB"
    # layers already present are not loaded again: no progress for them
    assert h.run(go(False)) == [{"stream": "Loaded image: foo:1\n"}]


def test_progress_bar_format() -> None:
    from dockyard.images.progress import human_size, progress_bar
    assert human_size(1_997_000) == "1.997MB" and human_size(512) == "512B"
    assert human_size(2_000_000) == "2MB" and human_size(32768) == "32.77kB"
    assert progress_bar(0, 0) == ""
    assert progress_bar(5, 10) == "[" + "=" * 25 + ">" + " " * 25 + "] " + "      5B/10B"


def test_commit_message_and_author_in_inspect(h: Harness) -> None:
    # moby records a commit's message in history only; inspect falls back to it
    h.load(legacy_archive([LAYER1], ["base:1"]))
    parent = h.svc.get("base:1").id
    child = {"config": {"Cmd": ["sh"]}, "container": "c" * 64, "container_config": {},
             "author": "QA <qa@x>", "comment": "my commit", "created_by": "sh"}
    image_id = h.run(h.svc.commit_layer(parent, iter([b"\0" * 1024]), child))
    out = h.svc.inspect(image_id)
    assert (out["Comment"], out["Author"]) == ("my commit", "QA <qa@x>")
    assert "comment" not in h.svc.image_config(image_id)       # as NewChildImage
    assert h.svc.inspect("base:1")["Comment"] == ""


def _big_layer(files: int = 4000) -> bytes:
    return simple_layer({f"d{i % 50}/f{i}": os.urandom(64) for i in range(files)})


@pytest.mark.parametrize("op", ["import", "load", "commit"])
def test_cancelled_operation_leaves_nothing(h: Harness, op: str) -> None:
    """A client gone while its layer is being unpacked: the work stops, no
    image, layer, blob or staging file is left, and the store is usable."""
    big = _big_layer()
    base_layer = simple_layer({"x": b"1"})
    tmp = h.root / "images" / "tmp"

    async def consume(it: Any) -> None:
        async for _ in it:
            pass

    async def go() -> None:
        base_id = ""
        if op == "commit":
            base_id = (await _first(h.svc.import_image(chunks_of(base_layer))))["status"]
        before = {r.id for r in h.svc.list_records()}
        layers_before = set(os.listdir(h.root / "images" / "layers"))
        blobs_before = set(os.listdir(h.root / "images" / "blobs" / "sha256"))
        if op == "import":
            task = asyncio.create_task(consume(h.svc.import_image(chunks_of(big), repo="gone")))
        elif op == "load":
            task = asyncio.create_task(consume(h.svc.load(chunks_of(
                legacy_archive([big], ["gone:1"])))))
        else:
            task = asyncio.create_task(h.svc.commit_layer(base_id, iter([big]), {}))
        for _ in range(5000):
            if any(p.name.startswith("layer-") for p in tmp.iterdir()):
                break
            await asyncio.sleep(0.001)
        else:
            raise AssertionError("the layer was never unpacked")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # whatever the worker thread was doing has finished: nothing it made is left
        await asyncio.sleep(0.2)
        assert {r.id for r in h.svc.list_records()} == before
        assert set(os.listdir(h.root / "images" / "layers")) == layers_before
        assert set(os.listdir(h.root / "images" / "blobs" / "sha256")) == blobs_before
        assert list(tmp.iterdir()) == []
        # and the store's lock is free again
        await asyncio.wait_for(_first(h.svc.import_image(chunks_of(base_layer), repo="ok")), 10)

    h.run(go())
    assert "docker.io/library/gone:latest" not in h.open().store.refs


async def _first(it: Any) -> Any:
    async for m in it:
        return m
    return None
