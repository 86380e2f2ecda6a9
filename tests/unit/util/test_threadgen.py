"""A blocking generator as an async stream: batches, bytes intact, and the
generator closed when the stream ends or is left early."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator

from dockyard.util.threadgen import batched_in_thread


def test_batches_keep_every_byte_and_pass_big_pieces_on():
    pieces = [os.urandom(n) for n in (200000, 0, 10, 300, 70000, 1)]
    closed = []

    def gen() -> Generator[bytes, None, None]:
        try:
            yield from pieces
        finally:
            closed.append(True)

    async def go() -> list[bytes]:
        return [c async for c in batched_in_thread(gen(), batch=65536)]

    out = asyncio.run(go())
    assert b"".join(out) == b"".join(pieces)
    assert closed == [True]
    # a piece that is a batch alone goes on as it is; small ones are gathered
    assert out[0] is pieces[0]
    assert [len(c) for c in out] == [200000, 70310, 1]


def test_leaving_early_closes_the_generator():
    closed = []

    def gen() -> Generator[bytes, None, None]:
        try:
            while True:
                yield b"x" * 1000
        finally:
            closed.append(True)

    async def go() -> bytes:
        stream = batched_in_thread(gen(), batch=4096)
        first = await stream.__anext__()
        await stream.aclose()
        return first

    assert len(asyncio.run(go())) >= 4096
    assert closed == [True]
