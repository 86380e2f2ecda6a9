"""LayerSink: a blob hashed, decompressed and written in one pass, fed in
pieces of any size."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest
import zstandard

from dockyard.images.distribution.layersink import LayerDataError, LayerSink

DATA = random.Random(4).randbytes(300_000) + b"\0" * 200_000


def _feed(path: Path, blob: bytes, piece: int) -> tuple[LayerSink, tuple[str, int]]:
    sink = LayerSink(path)
    for i in range(0, len(blob), piece):
        sink.write(blob[i:i + piece])
    return sink, sink.finish()


@pytest.mark.parametrize("piece", [5, 4096, 1 << 20])
@pytest.mark.parametrize("kind", ["none", "gzip", "gzip-members", "zstd", "zstd-frames"])
def test_every_compression_in_pieces_of_any_size(tmp_path, kind, piece):
    blob = {"none": lambda: DATA,
            "gzip": lambda: gzip.compress(DATA),
            "gzip-members": lambda: gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:]),
            "zstd": lambda: zstandard.ZstdCompressor().compress(DATA),
            "zstd-frames": lambda: (zstandard.ZstdCompressor().compress(DATA[:7])
                                    + zstandard.ZstdCompressor().compress(DATA[7:]))}[kind]()
    sink, (diff_id, size) = _feed(tmp_path / "t", blob, piece)
    assert sink.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert size == len(DATA) and sink.received == len(blob)
    assert (tmp_path / "t").read_bytes() == DATA


def test_one_byte_at_a_time(tmp_path):
    blob = gzip.compress(DATA[:20_000])
    _sink, (diff_id, _size) = _feed(tmp_path / "t", blob, 1)
    assert diff_id == "sha256:" + hashlib.sha256(DATA[:20_000]).hexdigest()


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
def test_truncated_streams_are_refused(tmp_path, compress):
    blob = compress(DATA)
    sink = LayerSink(tmp_path / "t")
    sink.write(blob[:-20])
    with pytest.raises(LayerDataError, match="unexpected EOF"):
        sink.finish()
    sink.abort()
    assert not (tmp_path / "t").exists()


def test_garbage_after_a_gzip_magic(tmp_path):
    sink = LayerSink(tmp_path / "t")
    with pytest.raises(LayerDataError, match="could not decompress"):
        sink.write(b"\x1f\x8b" + b"\xff" * 100)
    sink.abort()


def test_reset_starts_over(tmp_path):
    blob = gzip.compress(DATA)
    sink = LayerSink(tmp_path / "t")
    sink.write(blob[:1000])
    sink.reset()
    sink.write(blob)
    diff_id, _ = sink.finish()
    assert diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
