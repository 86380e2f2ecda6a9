"""The k8s-file bytes of one container not yet known to be in its json log.

Blocking file work: call it from the pump's thread.

With a FIFO (every container dockyard starts) conmon writes its k8s-file
log into the FIFO and the spool is a regular file only the daemon writes:
`fill` moves bytes from the FIFO to the spool's end with splice(2), which
the kernel does page by page, so a daemon killed at any instant leaves
every byte either still in the FIFO or in the spool.  `forget` drops what
the json log holds: a new file holding the rest, after a first line with
the converter's state there (convert.py), is renamed over the spool, so a
crash sees the old spool or the new one, never half of either.

Without a FIFO the spool is conmon's own log file (a run started before the
FIFO existed): read-only to us, followed when conmon replaces it.

Positions are counted in the byte stream since the pump started, so they
stay valid across `forget`; `base` is the position of the file's first byte.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

# A new spool is made once this much of the old one is no longer needed
# (or once the part dropped is larger than the part kept).
REBASE_MIN = 1 << 20


class Spool:
    def __init__(self, path: Path, fifo: Path | None = None) -> None:
        self.path = path
        self.fifo = fifo
        self.fifo_fd: int | None = None
        self.base = 0
        self.end = 0          # position after the last byte in the file
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._closed = False
        self._splice = True

    @property
    def from_fifo(self) -> bool:
        return self.fifo_fd is not None

    # ------------------------------------------------------------ opening
    def open(self) -> bool:
        """False while there is nothing to read yet (no conmon log file)."""
        if self._fd is not None:
            return True
        if self._closed:
            return False
        if self.fifo is not None and self._open_fifo():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        else:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        self.base = 0
        self.end = st.st_size
        return True

    def _open_fifo(self) -> bool:
        assert self.fifo is not None
        try:
            if not stat.S_ISFIFO(os.stat(self.fifo).st_mode):
                return False
            # Read and write: we are never the FIFO's last writer, so an
            # empty FIFO reads as EAGAIN, never as end of file.
            self.fifo_fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        self._closed = True
        for fd in (self._fd, self.fifo_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self.fifo_fd = None

    # ------------------------------------------------------------ reading
    def fill(self, upto: int) -> int:
        """Move bytes from the FIFO to the spool until its end reaches
        `upto` or the FIFO is empty; returns how many moved."""
        if self.fifo_fd is None or self._fd is None:
            return 0
        moved = 0
        while self.end < upto:
            try:
                n = self._move(upto - self.end)
            except BlockingIOError:
                break
            if n <= 0:
                break
            self.end += n
            moved += n
        return moved

    def _move(self, size: int) -> int:
        assert self.fifo_fd is not None and self._fd is not None
        if self._splice:
            try:
                return os.splice(self.fifo_fd, self._fd, size, offset_dst=self.end - self.base,
                                 flags=os.SPLICE_F_NONBLOCK)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                # a file system without splice: a killed daemon may then
                # lose what it had read and not yet written
                self._splice = False
        data = os.read(self.fifo_fd, min(size, 1 << 20))
        _pwrite_all(self._fd, data, self.end - self.base)
        return len(data)

    def read(self, pos: int, size: int) -> bytes:
        """Up to `size` bytes from position `pos` (b"" when there are none)."""
        if self._fd is None and not self.open():
            return b""
        assert self._fd is not None
        if self.fifo_fd is None:
            return self._read_file(pos, size)
        return os.pread(self._fd, min(size, self.end - pos), pos - self.base)

    def _read_file(self, pos: int, size: int) -> bytes:
        assert self._fd is not None
        length = os.fstat(self._fd).st_size
        if self.base + length < pos:
            self.base = pos  # truncated in place: what is there now is new
        self.end = self.base + length
        data = os.pread(self._fd, size, pos - self.base)
        if data or not self._replaced():
            return data
        # conmon --log-size-max renamed a new file over the path; it closes
        # the old one first, so what we read of it is complete.
        os.close(self._fd)
        self._fd = None
        if not self.open():
            return b""
        self.base, self.end = pos, pos + self.end
        return self._read_file(pos, size)

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: keep the old file, nothing new will come
        return (st.st_dev, st.st_ino) != self._ino

    # ------------------------------------------------------------ forgetting
    def forget_due(self, upto: int) -> bool:
        """Time to `forget` what is before `upto`."""
        return self.fifo_fd is not None and upto - self.base >= max(REBASE_MIN,
                                                                    self.end - upto)

    def first_line(self) -> bytes:
        """The spool's first line, if it is complete."""
        if self._fd is None:
            return b""
        head = os.pread(self._fd, 1 << 20, 0)
        cut = head.find(b"\n")
        return head[:cut + 1] if cut >= 0 else b""

    def forget(self, upto: int, checkpoint: bytes = b"", *, everything: bool = False) -> None:
        """Bytes before `upto` are in the json log; `checkpoint` (the
        converter's state at `upto`) becomes the new spool's first line.
        `everything`: the run is over, nothing after `upto` is ever read."""
        if self.fifo_fd is None or self._fd is None:
            return
        if everything:
            os.ftruncate(self._fd, 0)
            self.base = self.end = upto
            return
        drop, keep = upto - self.base, self.end - upto
        tmp = self.path.with_name(self.path.name + ".new")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, checkpoint)
            off = 0
            while off < keep:
                n = os.copy_file_range(self._fd, fd, keep - off, drop + off,
                                       len(checkpoint) + off)
                if n <= 0:
                    raise OSError(f"short copy of {self.path}")
                off += n
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(self._fd)
        self._fd = fd
        st = os.fstat(fd)
        self._ino = (st.st_dev, st.st_ino)
        self.base = upto - len(checkpoint)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
