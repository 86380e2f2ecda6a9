"""conmon's attach socket read in batches: runs of one stream joined, the
streams' order kept, conmon's close seen after the last output."""

from __future__ import annotations

import asyncio
import socket

from dockyard.runtime.attach import STDERR, STDOUT, AttachConnection


def test_batches_join_runs_and_keep_order_and_end():
    async def go() -> list[list[tuple[int, bytes]]]:
        ours, conmon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        conn = AttachConnection(ours)
        # conmon's packets: a stream byte (2 stdout, 3 stderr), then the data
        for packet in (b"\x02ab", b"\x02cd", b"\x03EF", b"\x09ignored", b"\x02gh"):
            conmon.send(packet)
        conmon.close()
        batches = []
        while (batch := await conn.receive_batch()) is not None:
            batches.append([(c.stream, c.data) for c in batch])
        assert await conn.receive() is None
        conn.close()
        return batches

    batches = asyncio.run(go())
    assert batches == [[(STDOUT, b"abcd"), (STDERR, b"EF"), (STDOUT, b"gh")]]


def test_a_batch_stops_at_its_limit():
    async def go() -> list[int]:
        ours, conmon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        conn = AttachConnection(ours)
        for _ in range(8):
            conmon.send(b"\x02" + b"x" * 1000)
        conmon.close()
        sizes = []
        while (batch := await conn.receive_batch(limit=3000)) is not None:
            sizes.append(sum(len(c.data) for c in batch))
        conn.close()
        return sizes

    assert asyncio.run(go()) == [3000, 3000, 2000]
