"""A blocking byte generator (tar writing, archive reading) as an async stream.

The generator runs in a worker thread so the event loop never waits on
disk.  One thread hop gathers a whole batch: a stream of many small tar
headers does not cost one hop each, and a piece that is a batch on its own
(a large file's chunk) is passed on as it is, not copied.  The generator
is closed when the stream ends or is closed early, so its `finally` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

DEFAULT_BATCH = 256 * 1024


def _gather(gen: Generator[bytes, None, None], batch: int) -> tuple[list[bytes], bool]:
    """The generator's next pieces, about `batch` bytes; True once it is done."""
    parts: list[bytes] = []
    size = 0
    for chunk in gen:
        if chunk:
            parts.append(chunk)
            size += len(chunk)
            if size >= batch:
                return parts, False
    return parts, True


async def batched_in_thread(gen: Generator[bytes, None, None], batch: int = DEFAULT_BATCH
                            ) -> AsyncGenerator[bytes, None]:
    try:
        done = False
        while not done:
            parts, done = await asyncio.to_thread(_gather, gen, batch)
            if parts:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        await asyncio.to_thread(gen.close)
