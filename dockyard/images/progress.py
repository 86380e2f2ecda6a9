"""Docker's JSON progress messages (`docker load` without quiet).

dockerd reads each layer it has to unpack through a progress reader that
reports `{"status": action, "progressDetail": {current, total}, "progress":
bar, "id": short id}`: after every min(512kB, 1% of the size) bytes read,
at most one every 100 ms (token bucket of one), always when the count
reaches the size and at end of data.  `progress` is the bar the daemon
renders for a 200-column terminal (JSONProgress.String with no tty).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

Emit = Callable[[dict[str, Any]], None]
READ_SIZE = 32 * 1024            # what dockerd's decompressing bufio reads at once
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits."""
    i = 0
    while size >= 1000.0 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int) -> str:
    """JSONProgress.String() at dockerd's width (200 columns, no units)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * max(50 - pct, 0) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def progress_message(short_id: str, action: str, current: int, total: int) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    msg: dict[str, Any] = {"status": action, "progressDetail": detail}
    bar = progress_bar(current, total)
    if bar:
        msg["progress"] = bar
    msg["id"] = short_id
    return msg


def short_id(digest: str) -> str:
    """stringid.TruncateID: the part after the algorithm, 12 characters."""
    return digest.partition(":")[2][:12] if ":" in digest else digest[:12]


class ProgressReader:
    """moby's progress.Reader over a binary stream."""

    def __init__(self, src: IO[bytes], size: int, short: str, action: str, emit: Emit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._src = src
        self.size = size
        self.current = 0
        self._last_update = 0
        self._id = short
        self._action = action
        self._emit = emit
        self._clock = clock
        self._next_token = float("-inf")     # the limiter starts with its one token

    def _allow(self) -> bool:
        now = self._clock()
        if now >= self._next_token:
            self._next_token = now + 0.1
            return True
        return False

    def _update(self, last: bool) -> None:
        if last or self.current == self.size or self._allow():
            self._emit(progress_message(self._id, self._action, self.current, self.size))

    def read(self, n: int = READ_SIZE) -> bytes:
        data = self._src.read(min(n, READ_SIZE) if n and n > 0 else READ_SIZE)
        self.current += len(data)
        every = 512 * 1024
        if self.size > 0:
            every = min(every, int(0.01 * self.size))
        if self.current - self._last_update > every or not data:
            self._update(not data)
            self._last_update = self.current
        return data

    def close(self) -> None:
        if self.current < self.size:
            self.current = self.size          # a full bar when closed early
            self._update(False)
