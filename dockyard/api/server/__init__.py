"""dockyard's HTTP/1.1 server for the Docker API: h11 parses and frames,
wsproto speaks websocket, and the connection loop owns what Docker needs
beyond plain HTTP (hijacked streams with half-close, long-lived streamed
responses that notice a departed client, streamed request bodies).

Route handlers use `Request`, the response helpers and `Router`; hijacking
handlers get a `HijackedStream` or a `WebSocket`.
"""

from dockyard.api.server.connection import STREAM_LIMIT, HttpServer, Limits
from dockyard.api.server.hijack import HijackedStream
from dockyard.api.server.request import ClientGone, Request, cancel_on_disconnect, parse_filters
from dockyard.api.server.responses import (
    BytesResponse,
    HijackResponse,
    Response,
    StreamResponse,
    WebSocketResponse,
    empty_response,
    error_response,
    json_response,
    json_stream_response,
    stream_response,
    text_response,
)
from dockyard.api.server.router import Router
from dockyard.api.server.websocket import WebSocket

__all__ = [
    "STREAM_LIMIT", "BytesResponse", "ClientGone", "HijackResponse", "HijackedStream",
    "HttpServer", "Limits", "Request", "Response", "Router", "StreamResponse", "WebSocket",
    "WebSocketResponse", "cancel_on_disconnect", "empty_response", "error_response",
    "json_response", "json_stream_response", "parse_filters", "stream_response",
    "text_response",
]
