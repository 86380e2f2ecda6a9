"""Hostile layers, archives and image configs: each a 400 with dockerd's kind
of text (never a Python exception's name), nothing written outside the layer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from imgtestutil import (
    chunks_of,
    entry,
    image_config,
    legacy_archive,
    sha,
    simple_layer,
    tar_bytes,
    write,
)

from dockyard.errors import InvalidParameter
from dockyard.images.archive import ArchiveReader
from dockyard.images.imageconfig import check_image_config
from dockyard.images.layers import apply_layer_tar
from dockyard.images.service import ImageService

PY_NAMES = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
TAR = "Error processing tar file(exit status 1): "
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need CAP_MKNOD")


def _apply(tmp_path: Path, members: list) -> Path:
    stage = tmp_path / "stage"
    (stage / "diff").mkdir(parents=True)
    (stage / "layer.json").write_text("sentinel")        # what ".." of the layer holds
    apply_layer_tar(write(tmp_path / "l.tar", tar_bytes(members)), stage / "diff")
    return stage / "diff"


def _refused(tmp_path: Path, members: list) -> str:
    with pytest.raises(InvalidParameter) as ei:
        _apply(tmp_path, members)
    assert ei.value.status == 400
    assert not PY_NAMES.search(ei.value.message), ei.value.message
    return ei.value.message


@root_only
@pytest.mark.parametrize(("name", "where"), [
    ("sub/.wh...", "/"), (".wh...", "/"), ("sub/.wh..", "/sub"), ("sub/.wh.", "/sub"),
    (".wh.", "/"), (".wh..", "/")])
def test_whiteouts_naming_no_entry_are_refused(tmp_path: Path, name: str, where: str) -> None:
    msg = _refused(tmp_path, [entry("sub/", tarfile.DIRTYPE, mode=0o755),
                              entry("sub/keep", data=b"k"), entry(name, data=b"")])
    assert msg == f'{TAR}failed to mknod("{where}", S_IFCHR, 0): file exists'
    assert (tmp_path / "stage" / "layer.json").read_text() == "sentinel"
    assert (tmp_path / "stage" / "diff" / "sub" / "keep").read_bytes() == b"k"


@pytest.mark.parametrize("pax", [{"path": "a\x00b"}, {"linkpath": "x\x00y"}])
def test_nul_in_a_name_is_an_invalid_header(tmp_path: Path, pax: dict[str, str]) -> None:
    kind = tarfile.SYMTYPE if "linkpath" in pax else tarfile.REGTYPE
    msg = _refused(tmp_path, [entry("a", kind, data=None if kind == tarfile.SYMTYPE else b"x",
                                    linkname="t", pax=pax)])
    assert msg == TAR + "archive/tar: invalid tar header"


def test_bad_hardlinks_and_parents(tmp_path: Path) -> None:
    msg = _refused(tmp_path, [entry("a", data=b"x"),
                              entry("b", tarfile.LNKTYPE, linkname="nothere")])
    assert msg == TAR + "link /nothere /b: no such file or directory"
    (tmp_path / "stage").rename(tmp_path / "old1")
    msg = _refused(tmp_path, [entry("d/", tarfile.DIRTYPE), entry("b", tarfile.LNKTYPE,
                                                                  linkname="d")])
    assert msg == TAR + "link /d /b: operation not permitted"
    (tmp_path / "stage").rename(tmp_path / "old2")
    msg = _refused(tmp_path, [entry("a", data=b"x"), entry("a/b", data=b"y")])
    assert msg == TAR + "open /a/b: not a directory"
    (tmp_path / "stage").rename(tmp_path / "old3")
    msg = _refused(tmp_path, [entry("x" * 300, data=b"y")])
    assert msg == TAR + f"open /{'x' * 300}: file name too long"


def test_dotdot_names_and_links_stay_in_the_layer(tmp_path: Path) -> None:
    diff = _apply(tmp_path, [entry("../../outside", data=b"o"),
                             entry("h", tarfile.LNKTYPE, linkname="../../../outside")])
    assert (diff / "h").stat().st_ino == (diff / "outside").stat().st_ino
    assert not (tmp_path / "outside").exists()
    assert (tmp_path / "stage" / "layer.json").read_text() == "sentinel"


def _reader_error(tmp_path: Path, data: bytes) -> str:
    with pytest.raises(InvalidParameter) as ei:
        reader = ArchiveReader(write(tmp_path / "a.tar", data))
        try:
            for ai in reader.images():
                reader.read(ai.config_member)
        finally:
            reader.close()
    assert not PY_NAMES.search(ei.value.message), ei.value.message
    return ei.value.message


def _archive(manifest: object, extra: dict[str, bytes] | None = None) -> bytes:
    files = {"manifest.json": json.dumps(manifest).encode(), **(extra or {})}
    return tar_bytes([entry(n, data=d) for n, d in files.items()])


def test_archives_of_the_wrong_shape(tmp_path: Path) -> None:
    assert _reader_error(tmp_path, b"this is no archive") == TAR + "unexpected EOF"
    assert _reader_error(tmp_path, _archive({"a": 1})) == (
        "json: cannot unmarshal object into Go value of type []tarexport.manifestItem")
    assert _reader_error(tmp_path, _archive(["x"])) == (
        "json: cannot unmarshal string into Go value of type tarexport.manifestItem")
    assert "no Config" in _reader_error(tmp_path, _archive([{"Layers": []}]))
    assert _reader_error(tmp_path, _archive([{"Config": 5}])) == (
        "json: cannot unmarshal number into Go struct field manifestItem.Config of type string")
    assert "manifestItem.Layers" in _reader_error(tmp_path, _archive([{"Config": "c",
                                                                       "Layers": "l"}]))
    assert "missing c.json" in _reader_error(tmp_path, _archive([{"Config": "c.json"}]))
    hardlink = tar_bytes([entry("manifest.json", data=json.dumps([{"Config": "c.json"}]).encode()),
                          entry("c.json", tarfile.LNKTYPE, linkname="nothere")])
    assert _reader_error(tmp_path, hardlink) == (
        TAR + "link /nothere /c.json: no such file or directory")
    oci = tar_bytes([entry("index.json", data=b'{"manifests": [{"no": "digest"}]}')])
    assert "index.json" in _reader_error(tmp_path, oci)
    nested = tar_bytes([entry("manifest.json", data=b"[" * 100_000)])
    assert "manifest.json" in _reader_error(tmp_path, nested)


@pytest.mark.parametrize(("change", "text"), [
    ({"config": "x"}, "field Image.config of type map"),
    ({"config": {"Env": "A=1"}}, "field Config.Env of type []string"),
    ({"config": {"Cmd": [1]}}, "field Config.Cmd of type []string"),
    ({"config": {"Labels": {"a": 1}}}, "Config.Labels"),
    ({"history": "x"}, "field Image.history"),
    ({"created": 5}, "field Image.created of type string"),
    ({"rootfs": None}, "no RootFS key"),
    ({"rootfs": {"diff_ids": "x"}}, "RootFS.diff_ids"),
])
def test_image_configs_of_the_wrong_shape(change: dict, text: str) -> None:
    cfg = json.loads(image_config([sha(b"l")]))
    cfg.update(change)
    if change.get("rootfs", 0) is None:
        del cfg["rootfs"]
    with pytest.raises(InvalidParameter) as ei:
        check_image_config(cfg)
    assert text in ei.value.message
    assert not PY_NAMES.search(ei.value.message)
    check_image_config(json.loads(image_config([sha(b"l")])))


def test_a_hostile_config_never_reaches_the_store(tmp_path: Path) -> None:
    layer = simple_layer({"f": b"x"})
    cfg = json.loads(image_config([sha(layer)]))
    cfg["config"] = "not an object"
    svc = ImageService(tmp_path / "data", lambda *a: None, lambda i: [])

    async def load() -> None:
        async for _ in svc.load(chunks_of(legacy_archive([layer], ["x:1"],
                                                          config=json.dumps(cfg).encode()))):
            pass

    with pytest.raises(InvalidParameter):
        asyncio.run(load())
    assert svc.list_records() == []
    assert list((tmp_path / "data" / "images" / "layers").iterdir()) == []
