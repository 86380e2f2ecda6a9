"""A blocking byte generator (tar writing, archive reading) as an async stream.

Each step runs in a worker thread so the event loop never waits on disk;
small chunks are gathered into batches so a stream of many small tar
headers does not cost one thread hop each.  The generator is closed when
the stream ends or is closed early, so its `finally` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

DEFAULT_BATCH = 256 * 1024


async def batched_in_thread(gen: Generator[bytes, None, None], batch: int = DEFAULT_BATCH
                            ) -> AsyncGenerator[bytes, None]:
    buf = bytearray()
    try:
        while True:
            chunk = await asyncio.to_thread(next, gen, None)
            if chunk is None:
                break
            buf += chunk
            if len(buf) >= batch:
                yield bytes(buf)
                buf.clear()
        if buf:
            yield bytes(buf)
    finally:
        await asyncio.to_thread(gen.close)
