"""Container logs: Docker's json-file driver on top of conmon's k8s-file log.

conmon writes `<ts> <stream> <F|P> <text>` records while the container
runs, whether or not the daemon is up.  `LogPump` turns them into the
json-file log Docker clients expect at `LogPath` (`<id>-json.log`, rotated
by max-size/max-file), and `read_logs` serves `GET /containers/{id}/logs`
and `attach?logs=1` from it.  The API layer chooses framing: `mux_frame`
without a TTY, raw payloads with one.

Split by concern:
- logs_format: parse/format helpers, json-file encoding, options, framing
- logs_pump:   LogPump (conversion, rotation, resume after restart)
- logs_reader: read_logs (tail, since/until, timestamps, follow)
- logs_files:  blocking file helpers (backward line scan, rotated files)
"""

from __future__ import annotations

from dockyard.engine.logs_files import json_log_files
from dockyard.engine.logs_format import (
    CHUNK_SIZE,
    STDERR,
    STDOUT,
    JsonFileOptions,
    JsonRecord,
    decode_json_record,
    encode_json_record,
    format_json_time,
    format_time_ns,
    mux_frame,
    parse_json_file_opts,
    parse_k8s_line,
    parse_mux_frames,
    parse_since,
    parse_size,
    parse_until,
)
from dockyard.engine.logs_pump import LogPump
from dockyard.engine.logs_reader import read_logs

__all__ = [
    "CHUNK_SIZE", "STDERR", "STDOUT", "JsonFileOptions", "JsonRecord", "LogPump",
    "decode_json_record", "encode_json_record", "format_json_time", "format_time_ns",
    "json_log_files", "mux_frame", "parse_json_file_opts", "parse_k8s_line",
    "parse_mux_frames", "parse_since", "parse_size", "parse_until", "read_logs",
]
