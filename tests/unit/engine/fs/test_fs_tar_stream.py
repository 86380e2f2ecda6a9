"""`docker cp` extraction from a pipe, as the daemon feeds it: regular
files' data copied straight from the stream (util/tarfeed), every other
header form parsed by tarfile, compressed archives as before, and a stream
that ends early refused."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.engine.fs.tar import ExtractOptions, extract
from dockyard.errors import InvalidParameter
from dockyard.util.tarfeed import TarFeed


def piped(data: bytes, piece_sizes: list[int]) -> io.BufferedReader:
    """A reader on a pipe a thread writes `data` into in pieces of those sizes
    (repeating), so reads return what has come so far."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)

    def write() -> None:
        i, k = 0, 0
        try:
            while i < len(data):
                n = piece_sizes[k % len(piece_sizes)]
                os.write(wfd, data[i:i + n])
                i += n
                k += 1
        except BrokenPipeError:
            pass
        finally:
            os.close(wfd)

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(rfd, "rb", buffering=1 << 20)


def make_tar(members: list[tuple[str, str, bytes | str]], fmt: int = tarfile.PAX_FORMAT,
             compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compression, format=fmt) as tf:
        for name, kind, content in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if kind == "f":
                assert isinstance(content, bytes)
                ti.size = len(content)
                ti.mode = 0o640
                tf.addfile(ti, io.BytesIO(content))
                continue
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(content)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(content)
            tf.addfile(ti)
    return buf.getvalue()


@pytest.fixture
def dest(tmp_path: Path):
    d = tmp_path / "root"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    yield d, fd
    os.close(fd)


RND = random.Random(11)
FILES = {
    "big": RND.randbytes(5 * 1024 * 1024 + 123),
    "aligned": RND.randbytes(4096),            # no padding after the data
    "tiny": b"x",
    "empty": b"",
    "d/" + "long-name-" * 20: RND.randbytes(3000),   # a pax path record
}


def members() -> list[tuple[str, str, bytes | str]]:
    out: list[tuple[str, str, bytes | str]] = [("d", "d", b"")]
    out += [(name, "f", data) for name, data in FILES.items()]
    out += [("link", "s", "big"), ("hard", "h", "aligned"), ("after", "f", b"last")]
    return out


def check_tree(root: Path) -> None:
    for name, data in FILES.items():
        got = (root / name).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
        assert (root / name).stat().st_mode & 0o777 == 0o640
    assert os.readlink(root / "link") == "big"
    assert (root / "hard").read_bytes() == FILES["aligned"]
    assert (root / "after").read_bytes() == b"last"


@pytest.mark.parametrize("pieces", [[1 << 20], [32 * 1024], [1, 511, 513, 70000]])
def test_extract_from_a_pipe(dest, pieces: list[int]):
    root, fd = dest
    extract(fd, [], piped(make_tar(members()), pieces), ExtractOptions())
    check_tree(root)


def test_extract_from_a_pipe_in_tiny_pieces(dest):
    root, fd = dest
    small = [m for m in members() if m[0] not in ("big", "link")]
    extract(fd, [], piped(make_tar(small), [7]), ExtractOptions())
    assert (root / "aligned").read_bytes() == FILES["aligned"]
    assert (root / "hard").read_bytes() == FILES["aligned"]
    assert (root / "after").read_bytes() == b"last"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_other_header_formats(dest, fmt: int):
    root, fd = dest
    ms = members()
    if fmt == tarfile.USTAR_FORMAT:
        ms = [m for m in ms if len(m[0]) < 100]
    extract(fd, [], piped(make_tar(ms, fmt), [65536]), ExtractOptions())
    assert (root / "big").read_bytes() == FILES["big"]
    if fmt == tarfile.GNU_FORMAT:                  # a GNU long name member
        check_tree(root)


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_compressed_archives(dest, compression: str):
    root, fd = dest
    extract(fd, [], piped(make_tar(members(), compression=compression), [65536]),
            ExtractOptions())
    check_tree(root)


@pytest.mark.parametrize("cut", [700, 512 * 3 + 100, 2 * 1024 * 1024])
def test_a_stream_that_ends_inside_a_file_is_refused(dest, cut: int):
    _, fd = dest
    data = make_tar([("big", "f", FILES["big"])])
    with pytest.raises(InvalidParameter, match="invalid tar archive: unexpected end of data"):
        extract(fd, [], piped(data[:cut], [65536]), ExtractOptions())


def test_empty_and_garbage_streams_are_refused(dest):
    _, fd = dest
    with pytest.raises(InvalidParameter, match="invalid tar archive"):
        extract(fd, [], piped(b"", [1]), ExtractOptions())
    with pytest.raises(InvalidParameter, match="invalid tar archive"):
        extract(fd, [], piped(os.urandom(5000), [1000]), ExtractOptions())


def test_feed_moves_forward_only():
    feed = TarFeed(io.BytesIO(b"0123456789"), b"ab")
    assert feed.read(1) == b"a" and feed.tell() == 1
    assert feed.read(3) == b"b01" and feed.tell() == 4
    assert feed.seek(6) == 6 and feed.read(2) == b"45"
    with pytest.raises(OSError):
        feed.seek(3)
    out_r, out_w = os.pipe()
    feed.copy_to(out_w, 3, lambda: None)
    os.close(out_w)
    assert os.read(out_r, 100) == b"678"
    os.close(out_r)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
            feed.copy_to(null, 5, lambda: None)
    finally:
        os.close(null)
