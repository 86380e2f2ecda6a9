"""Blocking file helpers for json-file logs (call them in a thread)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 64 * 1024


def json_log_files(json_log: Path, max_file: int) -> list[Path]:
    """Existing files of one container's log, oldest first: `.N` ... `.1`,
    then the current file (the order `read_logs` expects)."""
    files = [Path(f"{json_log}.{i}") for i in range(max_file - 1, 0, -1)]
    files.append(json_log)
    return [p for p in files if p.exists()]


def iter_lines_backward(path: Path, end: int | None = None,
                        block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, bytes]]:
    """(offset, line without "\\n") from the end of a file towards its start,
    reading fixed blocks backwards so a tail of a huge file costs little.
    An unterminated last line (a write in progress) is left out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        pos = os.fstat(fd).st_size if end is None else end
        carry = b""          # bytes after the earliest "\n" seen so far
        first = True
        while pos > 0:
            start = max(0, pos - block_size)
            block = os.pread(fd, pos - start, start)
            if not block:
                break
            data = block + carry
            if first:
                # Drop an unterminated tail: it is not a record yet.
                cut = data.rfind(b"\n")
                data = data[:cut + 1] if cut >= 0 else b""
                first = cut < 0 and start > 0
                if first:     # whole block had no "\n" yet
                    carry = b""
                    pos = start
                    continue
            # `data` ends with "\n"; every "\n" before it closes a line.
            lines = data.split(b"\n")
            lines.pop()  # empty piece after the final "\n"
            # lines[0] may continue in the previous block, unless at file start.
            base = start
            offsets = []
            off = base
            for ln in lines:
                offsets.append(off)
                off += len(ln) + 1
            keep_first = start == 0
            for i in range(len(lines) - 1, 0 if not keep_first else -1, -1):
                yield offsets[i], lines[i]
            carry = b"" if keep_first else lines[0] + b"\n"
            pos = start
    finally:
        os.close(fd)
