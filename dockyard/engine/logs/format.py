"""Pure helpers for Docker's json-file log format (no I/O).

Behaviour follows moby's json-file driver (`daemon/logger/jsonfilelog`,
`jsonlog/jsonlogbytes.go`, `jsonlog/time_marshalling.go`), the copier's
16 KiB line split (`daemon/logger/copier.go`), go-units `RAMInBytes` for
`max-size`, and `api/types/time` for `since`/`until`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dockyard.errors import InvalidParameter
from dockyard.runtime.logs import LogEntry, LogParseError, parse_k8s_log_line, parse_timestamp_ns
from dockyard.util.timefmt import rfc3339_nano

# Docker's copier reads a line into a 16 KiB buffer; a longer line is cut
# into pieces of exactly this many bytes (only the last keeps the "\n").
CHUNK_SIZE = 16 * 1024

STDOUT = 1
STDERR = 2
STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}

_NS = 1_000_000_000

__all__ = [
    "CHUNK_SIZE", "JsonEncoder", "JsonFileOptions", "JsonRecord", "LogEntry", "LogParseError",
    "decode_json_record", "encode_json_record", "parse_json_file_opts", "parse_k8s_line",
    "parse_since", "parse_size", "parse_until",
]


def parse_k8s_line(line: bytes) -> LogEntry:
    """One conmon k8s-file record -> LogEntry (`data` keeps the container's
    own "\\n" for an `F` record; a `P` record's data has none)."""
    return parse_k8s_log_line(line)


# ---------------------------------------------------------------- time

_TIMESTAMP_RE = re.compile(r"([+-]?\d+)(?:\.(\d*))?")


def _parse_unix_timestamp(value: str, name: str) -> int:
    # Docker's parseTimestamp: "<seconds>[.<fraction>]", fraction scaled to
    # nanoseconds (padded or cut to 9 digits).
    m = _TIMESTAMP_RE.fullmatch(value)
    if m is None or (m.group(2) is not None and m.group(2) == ""):
        raise InvalidParameter(f'invalid value for "{name}": invalid timestamp "{value}"')
    secs = int(m.group(1))
    frac = m.group(2) or ""
    nanos = int((frac + "000000000")[:9]) if frac else 0
    # time.Unix(sec, nsec): the fraction always adds, even for negative seconds.
    return secs * _NS + nanos


def parse_since(value: str) -> int:
    """API `since` (Unix seconds with optional fraction) -> ns; "" -> 0."""
    if value == "":
        return 0
    return _parse_unix_timestamp(value, "since")


def parse_until(value: str) -> int | None:
    """API `until` -> ns, or None when unset ("" or "0", as in moby)."""
    if value in ("", "0"):
        return None
    return _parse_unix_timestamp(value, "until")


# ---------------------------------------------------------------- options

_SIZE_RE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_BINARY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str) -> int:
    """go-units RAMInBytes: `10m`, `1k`, `1.5g`, `100`, `2MiB` (binary units,
    case-insensitive, optional `i`/`b`).  Raises InvalidParameter."""
    m = _SIZE_RE.fullmatch(value)
    if m is None:
        raise InvalidParameter(f"invalid size: '{value}'")
    try:
        number = float(m.group(1))
    except ValueError:  # "1.2.3" passes the regex, as in go-units, but not ParseFloat
        raise InvalidParameter(
            f'strconv.ParseFloat: parsing "{m.group(1)}": invalid syntax') from None
    return int(number * _BINARY_UNITS[(m.group(2) or "").lower()])


@dataclass(frozen=True)
class JsonFileOptions:
    max_size: int | None   # None: never rotate
    max_file: int          # >= 1
    compress: bool         # validated like Docker, then ignored (files stay plain)


_JSON_FILE_KEYS = frozenset(
    {"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"})

_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_json_file_opts(opts: dict[str, str] | None) -> JsonFileOptions:
    """Validate `HostConfig.LogConfig.Config` for json-file with Docker's texts."""
    opts = opts or {}
    for key in opts:
        if key not in _JSON_FILE_KEYS:
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    max_size: int | None = None
    if "max-size" in opts:
        max_size = parse_size(opts["max-size"])
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        raw = opts["max-file"]
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
        max_file = int(raw)
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        raw = opts["compress"]
        if raw not in _GO_TRUE | _GO_FALSE:
            raise InvalidParameter(
                f'error reading compress log option: strconv.ParseBool: parsing "{raw}": '
                "invalid syntax")
        compress = raw in _GO_TRUE
        if compress and (max_file == 1 or max_size is None):
            raise InvalidParameter(
                "compress cannot be true when max-file is less than 2 or max-size is not set")
    if opts.get("tag"):
        check_tag_template(opts["tag"])
    for key in ("labels-regex", "env-regex"):
        if opts.get(key):
            _go_regex(opts[key])
    return JsonFileOptions(max_size, max_file, compress)


# ---------------------------------------------------------------- json-file records

@dataclass(frozen=True)
class JsonRecord:
    stream: str        # "stdout" / "stderr"
    time_ns: int
    log: bytes         # payload; ends with "\n" unless a partial piece
    attrs: dict[str, str] | None = None   # the log options' extra attributes

    @property
    def partial(self) -> bool:
        return not self.log.endswith(b"\n")


def _escape_table() -> Mapping[int, str]:
    # Go's ffjsonWriteJSONBytesAsString: control bytes as \u00XX except \n
    # and \r, plus <, >, & and U+2028/U+2029 escaped (HTML-safe JSON).
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\"})
    for ch in "<>&\u2028\u2029":
        table[ord(ch)] = f"\\u{ord(ch):04x}"
    return MappingProxyType(table)


_ESCAPES = _escape_table()  # read-only mapping


def _json_string_body(data: bytes) -> str:
    """Escape bytes like Go does: each invalid UTF-8 byte becomes `\\ufffd`
    (one per byte, as utf8.DecodeRune reports size 1), valid text is kept."""
    out: list[str] = []
    pos = 0
    while pos < len(data):
        try:
            text = data[pos:].decode("utf-8")
        except UnicodeDecodeError as err:
            out.append(data[pos:pos + err.start].decode("utf-8").translate(_ESCAPES))
            out.append("\\ufffd")
            pos += err.start + 1
            continue
        out.append(text.translate(_ESCAPES))
        break
    return "".join(out)


def encode_json_record(stream: str, log: bytes, time_ns: int, attrs: str = "") -> bytes:
    """One json-file line (with its "\\n"), byte-identical to dockerd's;
    `attrs` is the record's `"attrs":{...}` member, if any."""
    parts = []
    if log:  # `log` is omitempty in moby
        parts.append(f'"log":"{_json_string_body(log)}"')
    parts.append(f'"stream":"{stream}"')
    if attrs:
        parts.append(attrs)
    parts.append(f'"time":"{rfc3339_nano(time_ns)}"')
    return ("{" + ",".join(parts) + "}\n").encode("utf-8")


# Bytes a json-file `log` value cannot carry as they are (see _escape_table);
# anything at or above 0x80 goes the slow way to get Go's UTF-8 handling.
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\<>&\x80-\xff]')


class JsonEncoder:
    """`encode_json_record` for a stream of records, byte for byte the same:
    the `time` text is made once per timestamp (conmon stamps every line of
    one read alike) and plain ASCII text is copied without escaping."""

    def __init__(self, attrs: dict[str, str] | None = None) -> None:
        self._time_ns: int | None = None
        self._tails: dict[tuple[str, bool], bytes] = {}
        self._attrs = attrs_member(attrs or {})

    def tail(self, stream: str, newline: bool, time_ns: int) -> bytes:
        """What follows the `log` text of a record: `\\n` for a complete
        line, then the stream and the time."""
        if time_ns != self._time_ns:
            self._time_ns = time_ns
            self._tails.clear()
        tail = self._tails.get((stream, newline))
        if tail is None:
            attrs = "," + self._attrs if self._attrs else ""
            text = f'","stream":"{stream}"{attrs},"time":"{rfc3339_nano(time_ns)}"}}\n'
            tail = (b"\\n" if newline else b"") + text.encode()
            self._tails[(stream, newline)] = tail
        return tail

    def line(self, stream: str, body: bytes, time_ns: int) -> bytes:
        """A record for `body` + "\\n" (a complete line)."""
        if _NEEDS_ESCAPE.search(body) is not None:
            return encode_json_record(stream, body + b"\n", time_ns, self._attrs)
        return b'{"log":"' + body + self.tail(stream, True, time_ns)

    def record(self, stream: str, log: bytes, time_ns: int) -> bytes:
        """A record for any payload (a line, or a piece without "\\n")."""
        if log.endswith(b"\n"):
            return self.line(stream, log[:-1], time_ns)
        if not log or _NEEDS_ESCAPE.search(log) is not None:
            return encode_json_record(stream, log, time_ns, self._attrs)
        return b'{"log":"' + log + self.tail(stream, False, time_ns)


def decode_json_record(line: bytes) -> JsonRecord | None:
    """Parse one json-file line; None for a line that is not a record
    (torn write, garbage) so readers can skip it."""
    try:
        obj = json.loads(line)
        stream = obj.get("stream", "")
        ts = parse_timestamp_ns(obj["time"])
    except (ValueError, KeyError, TypeError, AttributeError, LogParseError):
        return None
    if stream not in STREAM_IDS:
        return None
    attrs = obj.get("attrs")
    attrs = {str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else None
    return JsonRecord(stream, ts, str(obj.get("log", "")).encode("utf-8"), attrs)


def attrs_member(attrs: dict[str, str]) -> str:
    """`"attrs":{...}` as Go marshals the map (sorted keys, HTML-safe
    escapes), or "" for none (omitempty)."""
    if not attrs:
        return ""
    text = json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return '"attrs":' + text


_LOG_INIT = "failed to initialize logging driver: "
_TAG_FIELDS = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
TAG_FIELDS = frozenset({"ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName",
                        "DaemonName"})


def check_tag_template(tag: str) -> None:
    """The `tag` log option: text and moby's Info fields in `{{.Field}}`."""
    for m in _TAG_FIELDS.finditer(tag):
        if m.group(1) not in TAG_FIELDS:
            line = tag.count("\n", 0, m.start()) + 1
            col = m.start(1) - 1 - (tag.rfind("\n", 0, m.start()) + 1)
            raise InvalidParameter(
                f'{_LOG_INIT}template: log-tag:{line}:{col}: executing "log-tag" at '
                f"<.{m.group(1)}>: can't evaluate field {m.group(1)} in type *logger.Info")
    rest = _TAG_FIELDS.sub("", tag)
    if "{{" in rest or "}}" in rest:
        # other template actions (functions, pipelines) are not done here
        raise InvalidParameter(f"{_LOG_INIT}the tag log option takes text and "
                               "{{.Field}} of " + ", ".join(sorted(TAG_FIELDS)) + " only")


def log_attrs(opts: dict[str, str], labels: dict[str, str], env: list[str],
              tag_fields: dict[str, str]) -> dict[str, str]:
    """The extra attributes the json-file driver writes with every record
    (moby's Info.ExtraAttributes, then `tag`)."""
    extra: dict[str, str] = {}
    for name in filter(None, opts.get("labels", "").split(",")):
        if name in labels:
            extra[name] = labels[name]
    if opts.get("labels-regex"):
        rx = _go_regex(opts["labels-regex"])
        extra.update({k: v for k, v in labels.items() if rx.search(k)})
    mapping = dict(e.split("=", 1) for e in env if "=" in e)
    for name in filter(None, opts.get("env", "").split(",")):
        if name in mapping:
            extra[name] = mapping[name]
    if opts.get("env-regex") and mapping:
        rx = _go_regex(opts["env-regex"])
        extra.update({k: v for k, v in mapping.items() if rx.search(k)})
    if opts.get("tag"):
        extra["tag"] = _TAG_FIELDS.sub(lambda m: tag_fields.get(m.group(1), ""), opts["tag"])
    return extra


def _go_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise InvalidParameter(f"{_LOG_INIT}error parsing regexp: {e.msg}: `{pattern}`"
                               ) from None
