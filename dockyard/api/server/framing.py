"""The request framing rules we enforce on top of h11.

h11 parses heads and bodies, but a few things it accepts are refused here
because two parsers could read them differently (the root of request
smuggling) or because they are old forms no Docker client sends:

- obsolete line folding (h11 joins the lines),
- Content-Length together with Transfer-Encoding (h11 lets the latter win),
- HTTP versions other than 1.0 and 1.1 (h11 takes any digit.digit),
- more than one Host header, malformed percent escapes in the path,
- chunk sizes longer than 16 hex digits (h11 takes 20),
- trailer sections beyond a small cap (h11 only caps them at the head limit).

A chunked body of the common shape is decoded here rather than by h11
(`ChunkedDecoder`): h11 makes an event of every chunk, and the docker CLI
sends `docker cp` and `docker load` bodies in 32 KiB chunks.

Everything here is pure: bytes and h11 events in, a `BadRequest` out.
"""

from __future__ import annotations

import re

import h11

# A complete request head ends at the first empty line (h11 accepts bare LF too).
HEAD_END = re.compile(rb"\n\r?\n")
# a header line that starts with a space or tab continues the previous one
_FOLDED_LINE = re.compile(rb"\n[ \t]")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HEX_PREFIX = re.compile(rb"[0-9A-Fa-f]*")
MAX_CHUNK_SIZE_DIGITS = 16
MAX_CHUNK_LINE = 4096          # size, extensions, CRLF
# the size lines ChunkedDecoder takes itself: digits only, ended by CRLF
_PLAIN_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")
_PLAIN_SIZE_START = re.compile(rb"[0-9A-Fa-f]{0,16}\r?")
_CRLF = b"\r\n"


class BadRequest(Exception):
    """The client broke HTTP framing: answer `status` and close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_head(head: bytes) -> None:
    """Rules on the raw head that h11 does not keep (it folds lines)."""
    if _FOLDED_LINE.search(head):
        raise BadRequest("malformed request: obsolete header line folding")


def check_request(ev: h11.Request) -> None:
    """Rules on the parsed head that h11 lets through."""
    if ev.http_version not in (b"1.0", b"1.1"):
        raise BadRequest(
            f"unsupported HTTP version: HTTP/{ev.http_version.decode('ascii', 'replace')}")
    names = [name for name, _ in ev.headers]
    if b"content-length" in names and b"transfer-encoding" in names:
        raise BadRequest("malformed request: both Content-Length and Transfer-Encoding")
    if names.count(b"host") > 1:
        raise BadRequest("malformed request: more than one Host header")
    path = ev.target.split(b"?", 1)[0]
    if _BAD_ESCAPE.search(path):
        raise BadRequest("malformed request: invalid URL escape in path")


def is_chunked(ev: h11.Request) -> bool:
    return any(name == b"transfer-encoding" for name, _ in ev.headers)


class ChunkedGuard:
    """Follows a chunked body's framing just ahead of h11.

    It sees every byte before h11 does, finds the chunk-size lines and the
    trailer section, and refuses sizes longer than 16 hex digits and
    trailers beyond `max_trailer` bytes.  Everything else (the CRLF after
    chunk data, the syntax of size lines and trailers) is left to h11; where
    h11 accepts a size line, it ends where this guard's line ends.
    """

    def __init__(self, max_trailer: int) -> None:
        self._max_trailer = max_trailer
        self._state = "size"     # size, data, trailer, done
        self._line = bytearray()
        self._left = 0           # data bytes plus the CRLF after them
        self._trailer = 0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and self._state != "done":
            if self._state == "data":
                take = min(self._left, n - i)
                i += take
                self._left -= take
                if self._left == 0:
                    self._state = "size"
                continue
            j = data.find(b"\n", i)
            end = n if j < 0 else j + 1
            self._line += data[i:end]
            i = end
            if self._state == "size":
                if len(self._line) > MAX_CHUNK_LINE:
                    raise BadRequest("malformed chunked request body: chunk size line too long")
                if j >= 0:
                    self._end_size_line()
            else:
                if j >= 0:
                    line = bytes(self._line)
                    self._line.clear()
                    if line in (b"\r\n", b"\n"):
                        self._state = "done"
                        continue
                    self._trailer += len(line)
                if self._trailer + len(self._line) > self._max_trailer:
                    raise BadRequest("malformed chunked request body: trailers too large")

    def _end_size_line(self) -> None:
        digits = _HEX_PREFIX.match(self._line)
        count = digits.end() if digits else 0
        if count > MAX_CHUNK_SIZE_DIGITS:
            raise BadRequest("malformed chunked request body: chunk size too long")
        if count == 0:
            raise BadRequest("malformed chunked request body: bad chunk size")
        size = int(self._line[:count], 16)
        self._line.clear()
        if size == 0:
            self._state = "trailer"
        else:
            self._left = size + 2
            self._state = "data"


class ChunkedDecoder:
    """Takes the chunk data out of large reads of a chunked body, for the
    shape every client sends: size lines of 1 to 16 hex digits ended by
    CRLF, each chunk's data followed by CRLF.

    At the first size line of any other shape (extensions, spaces, a bare
    LF, too many digits, anything h11 or ChunkedGuard would judge) and at
    the last chunk's line it stops and sets `handed_over`: from that line
    on, the body goes through ChunkedGuard and h11, which see a chunked
    body that starts there.  So every form they refuse is still refused,
    and the trailer section and the body's end are still theirs.  What it
    judges itself, the CRLF after each chunk's data, it judges as h11 does.
    """

    def __init__(self) -> None:
        self.handed_over = False
        self._left = 0            # data bytes of the current chunk still to come
        self._footer = 0          # bytes of the CRLF after the data still to come

    def decode(self, buf: bytes, pieces: list[memoryview]) -> int:
        """Appends the chunk data in `buf` to `pieces` (views of `buf`) and
        returns how many bytes of `buf` it used: the rest is an incomplete
        size line or CRLF, or, once handed over, h11's."""
        view = memoryview(buf)
        i, n = 0, len(buf)
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                pieces.append(view[i:i + take])
                i += take
                self._left -= take
                if not self._left:
                    self._footer = 2
            elif self._footer:
                expected = _CRLF[2 - self._footer:]
                got = buf[i:i + self._footer]
                if got != expected[:len(got)]:
                    raise BadRequest("malformed chunked request body: malformed chunk "
                                     f"footer: {got!r} (expected {expected!r})")
                i += len(got)
                self._footer -= len(got)
            else:
                m = _PLAIN_SIZE_LINE.match(buf, i)
                if m is None:
                    if n - i < 18 and _PLAIN_SIZE_START.fullmatch(buf, i):
                        break                       # the line goes on in the next read
                    self.handed_over = True
                    break
                size = int(m[1], 16)
                if size == 0:
                    self.handed_over = True
                    break
                self._left = size
                i = m.end()
        return i
