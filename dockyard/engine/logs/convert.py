"""k8s-file records -> json-file records, resumable at any record (pure).

`Converter` turns conmon's k8s-file bytes into Docker's json-file lines:
one record per line, lines over 16 KiB cut into 16 KiB pieces (only the
last with "\\n", all with the line's first timestamp), as moby's copier
does.  The common case (complete lines of plain text from one conmon read)
is converted a read at a time with bytes operations, not line by line.

Resuming after a crash: the json log is the truth.  For each stream, the
tail of the json log gives T (time of its last record), how many complete
lines starting at T it holds and how many bytes of a line starting at T it
holds as 16 KiB pieces (a `ResumePoint`); lines of one stream reach the
json log in conmon order, so replaying conmon's records, a line of that
stream starting before T is skipped, lines starting at T are skipped up to
that count (then the piece bytes), later ones are written.  Equal
timestamps are normal (conmon stamps every line of one read alike), which
is why the count is kept rather than "skip at or before T".

A replay need not start at the beginning of the run: `checkpoint()` at a
record boundary R is the converter's state there, for each stream the line
left open (its time and the bytes not yet written) and the same three
numbers for what it had sent to the json log before R.  A replay from R
starts from that state and skips what the json log holds beyond it (its
numbers at T minus those at R when T is the same time), so R may fall in
the middle of a read or of a line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.engine.logs.format import (
    CHUNK_SIZE,
    JsonEncoder,
    JsonRecord,
    LogParseError,
    parse_k8s_line,
)
from dockyard.runtime.logs import parse_timestamp_ns

log = logging.getLogger(__name__)

_SKIP_ALL = -1
_STREAMS = (b"stdout", b"stderr")
# A run of complete lines with one header (one stream, one conmon read),
# none long enough to be cut into 16 KiB pieces.
_RUN = re.compile(rb"(\S+ (?:stdout|stderr) F )[^\n]{0,%d}\n(?:\1[^\n]{0,%d}\n)*"
                  % (CHUNK_SIZE - 1, CHUNK_SIZE - 1))
# Bytes json text carries as they are (format.JsonEncoder), and "\n":
# `text.translate(None, _PLAIN)` is empty when `text` needs no escaping.
_PLAIN = bytes(b for b in range(0x80) if (b >= 0x20 or b == 0x0A) and b not in b'"\\<>&')

CHECKPOINT_MARK = b"#checkpoint "


@dataclass
class ResumePoint:
    """What the json log holds of one stream's latest time."""

    time_ns: int
    lines: int = 0        # complete lines starting at time_ns
    piece_bytes: int = 0  # bytes of the next line at time_ns, as pieces


class TailScan:
    """The json log's `ResumePoint` per stream, from its records newest
    first; `add` says when it has seen enough.  If a stream has no record
    in the last `budget` bytes, its lines older than the oldest record
    scanned are taken as written."""

    def __init__(self, budget: int, streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
        self.budget = budget
        self.streams = streams
        self._groups: dict[str, list[JsonRecord]] = {}
        self._done: set[str] = set()
        self._oldest: int | None = None
        self._scanned = 0

    def add(self, rec: JsonRecord | None, size: int) -> bool:
        self._scanned += size
        if rec is not None:
            if self._oldest is None or rec.time_ns < self._oldest:
                self._oldest = rec.time_ns
            group = self._groups.get(rec.stream)
            if rec.stream in self._done:
                pass
            elif group is None:
                self._groups[rec.stream] = [rec]
            elif group[0].time_ns == rec.time_ns:
                group.append(rec)
            else:
                self._done.add(rec.stream)
        if len(self._done) == len(self.streams):
            return True
        # Past the budget only streams with an open group keep reading.
        return self._scanned > self.budget and all(
            s in self._done or s not in self._groups for s in self.streams)

    def points(self) -> dict[str, ResumePoint]:
        points: dict[str, ResumePoint] = {}
        for name in self.streams:
            group = self._groups.get(name)
            if group:
                lines = piece = 0
                for rec in reversed(group):  # collected newest first
                    if rec.partial:
                        piece += min(CHUNK_SIZE, len(rec.log))
                    else:
                        lines, piece = lines + 1, 0
                points[name] = ResumePoint(group[0].time_ns, lines, piece)
            elif self._scanned > self.budget and self._oldest is not None:
                points[name] = ResumePoint(self._oldest)
        return points


@dataclass
class StreamState:
    name: str
    encode: Callable[[str, bytes, int], bytes]
    buf: bytearray = field(default_factory=bytearray)  # unwritten bytes of the open line
    line_ts: int | None = None   # first conmon timestamp of the open line
    skip: int = 0                # bytes of the open line still to drop (_SKIP_ALL: all)
    resume: ResumePoint | None = None
    sent: ResumePoint | None = None  # the json log's numbers for what went out

    def decide_skip(self, ts: int) -> None:
        """How much of a line starting at `ts` the json log already holds."""
        self.skip = 0
        point = self.resume
        if point is None or ts > point.time_ns:
            self.resume = None
        elif ts < point.time_ns:
            self.skip = _SKIP_ALL
        elif point.lines > 0:
            point.lines -= 1
            self.skip = _SKIP_ALL
        else:
            self.skip = point.piece_bytes
            point.piece_bytes = 0

    def count_sent(self, ts: int, lines: int, piece: int = 0) -> None:
        sent = self.sent
        if sent is None or sent.time_ns != ts:
            self.sent = sent = ResumePoint(ts)
        if lines:
            sent.lines += lines
            sent.piece_bytes = 0
        else:
            sent.piece_bytes += piece

    def take(self, piece: bytes, out: list[bytes]) -> None:
        assert self.line_ts is not None
        if piece.endswith(b"\n"):
            self.count_sent(self.line_ts, 1)
        else:
            self.count_sent(self.line_ts, 0, min(CHUNK_SIZE, len(piece)))
        if self.skip == _SKIP_ALL:
            return
        if self.skip:
            dropped = min(self.skip, len(piece))
            self.skip -= dropped
            piece = piece[dropped:]
            if not piece:
                return
        out.append(self.encode(self.name, piece, self.line_ts))

    def feed(self, ts: int, data: bytes, partial: bool, out: list[bytes]) -> None:
        if self.line_ts is None:
            self.line_ts = ts
            self.decide_skip(ts)
        self.buf += data
        # Docker's copier: a full 16 KiB buffer without "\n" becomes a piece.
        body_len = len(self.buf) - (0 if partial else 1)
        pos = 0
        while body_len - pos >= CHUNK_SIZE:
            self.take(bytes(self.buf[pos:pos + CHUNK_SIZE]), out)
            pos += CHUNK_SIZE
        if partial:
            del self.buf[:pos]
            return
        self.take(bytes(self.buf[pos:]), out)
        self.end_line()

    def flush(self, out: list[bytes]) -> None:
        """End the open line: what it holds is written without "\\n"."""
        if self.line_ts is not None and self.buf:
            self.take(bytes(self.buf), out)
        self.end_line()

    def end_line(self) -> None:
        self.buf.clear()
        self.line_ts = None
        self.skip = 0

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        sent = self.sent
        return {
            "sent": None if sent is None else [sent.time_ns, sent.lines, sent.piece_bytes],
            "line": None if self.line_ts is None else [self.line_ts, self.buf.hex()],
        }

    def restore(self, state: dict[str, Any], point: ResumePoint | None) -> None:
        """Continue from a checkpoint; `point` is the json log's now."""
        sent = state.get("sent")
        if sent is not None:
            self.sent = ResumePoint(*sent)
            if point is not None and point.time_ns == self.sent.time_ns:
                # what the json log holds at that time beyond the checkpoint
                lines = point.lines - self.sent.lines
                piece = point.piece_bytes - (self.sent.piece_bytes if lines == 0 else 0)
                point = ResumePoint(point.time_ns, max(0, lines), max(0, piece))
        self.resume = point
        line = state.get("line")
        if line is not None:
            self.line_ts = int(line[0])
            self.buf = bytearray.fromhex(line[1])
            self.decide_skip(self.line_ts)


class Converter:
    """Feed it k8s-file bytes in order; it appends json-file text to `out`."""

    def __init__(self, attrs: dict[str, str] | None = None) -> None:
        self._encoder = JsonEncoder(attrs)
        self.streams = {s: StreamState(s, self._encoder.record) for s in ("stdout", "stderr")}
        self.pos = 0                  # position of the next byte to parse
        self.bad_lines = 0
        self._ts_raw = b""
        self._ts = 0
        self._plain = False

    def resume(self, points: dict[str, ResumePoint], checkpoint: bytes | None = None) -> None:
        """Skip what the json log holds (`points`, from its tail), replaying
        from the start of the run or from a checkpoint line."""
        states: dict[str, Any] = {}
        if checkpoint is not None:
            try:
                states = json.loads(checkpoint.removeprefix(CHECKPOINT_MARK))["streams"]
            except (ValueError, KeyError, TypeError) as err:
                log.warning("ignoring a bad log checkpoint: %s", err)
        for name, st in self.streams.items():
            st.restore(states.get(name) or {}, points.get(name))

    def checkpoint(self) -> bytes:
        """The state at `pos`, as one line that is not a k8s-file record."""
        states = {name: st.state() for name, st in self.streams.items()}
        return CHECKPOINT_MARK + json.dumps({"streams": states}).encode() + b"\n"

    def skip_garbage(self, n: int) -> None:
        """Bytes that hold no record at all (not a k8s-file log)."""
        self.pos += n

    def finish(self, out: list[bytes]) -> None:
        """The run is over: open lines are written as they are."""
        for st in self.streams.values():
            st.flush(out)

    def feed(self, data: bytes, out: list[bytes]) -> int:
        """Convert the complete records at the start of `data` (which begins
        at `pos`); returns how many bytes that was.  `out` gets the json-file
        text in pieces to join."""
        end = data.rfind(b"\n") + 1
        self._plain = not data[:end].translate(None, _PLAIN)
        i = 0
        while i < end:
            nl = data.find(b"\n", i, end)
            sp = data.find(b" ", i, nl)
            if sp <= i:
                self._bad(LogParseError(f"short log line {data[i:min(nl, i + 80)]!r}"))
                i = nl + 1
                continue
            if data[i:sp] != self._ts_raw and not self._new_timestamp(data[i:sp]):
                i = nl + 1
                continue
            run = _RUN.match(data, i, end)
            if run is None or not self._run(data, i, run, out):
                # one by one: the first may end an open line, then try again
                self._record(data[i:nl], sp - i, out)
                i = nl + 1
            else:
                i = run.end()
        self.pos += end
        return end

    def _run(self, data: bytes, i: int, run: re.Match[bytes], out: list[bytes]) -> bool:
        """Complete lines of one stream from one conmon read, all at once;
        False if they need more than copying."""
        header = run.group(1)
        st = self.streams["stdout" if header.endswith(b"stdout F ") else "stderr"]
        if st.line_ts is not None or st.resume is not None:
            return False
        stop = run.end()
        if not self._plain and data[i:stop].translate(None, _PLAIN):
            return False
        tail = self._encoder.tail(st.name, True, self._ts)
        text = data[i + len(header):stop - 1].replace(b"\n" + header, tail + b'{"log":"')
        out += (b'{"log":"', text, tail)
        st.count_sent(self._ts, data.count(b"\n", i, stop))
        return True

    def _record(self, raw: bytes, sp: int, out: list[bytes]) -> None:
        """One record (without its "\\n"), `sp` the end of its timestamp."""
        ts = self._ts
        name = raw[sp + 1:sp + 7]
        tag = raw[sp + 8:sp + 9]
        if name in _STREAMS and raw[sp + 7:sp + 8] == b" " and tag in (b"F", b"P") \
                and raw[sp + 9:sp + 10] in (b" ", b""):
            st = self.streams["stdout" if name == b"stdout" else "stderr"]
            content = raw[sp + 10:]
            if tag == b"P":
                st.feed(ts, content, True, out)
            elif st.line_ts is None and st.resume is None and len(content) < CHUNK_SIZE:
                out.append(self._encoder.line(st.name, content, ts))
                st.count_sent(ts, 1)
            else:
                st.feed(ts, content + b"\n", False, out)
            return
        try:
            entry = parse_k8s_line(raw + b"\n")
        except LogParseError as err:
            self._bad(err)
            return
        self.streams[entry.stream].feed(ts, entry.data, entry.partial, out)

    def _new_timestamp(self, raw: bytes) -> bool:
        try:
            ts = parse_timestamp_ns(raw.decode("ascii"))
        except (LogParseError, UnicodeDecodeError) as err:
            self._bad(err)
            return False
        self._ts_raw, self._ts = raw, ts
        return True

    def _bad(self, err: Exception) -> None:
        self.bad_lines += 1
        if self.bad_lines <= 10:
            log.warning("skipping a bad conmon log line: %s", err)
