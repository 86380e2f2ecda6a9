"""Method + path patterns to handlers.

Patterns name their parameters as `{id}` (one path segment) or
`{name:.+}` (a regular expression).  The path is matched as the connection
decoded it, once: parameters are not unquoted again, so `abc%252F` arrives
as `abc%2F`, never as `abc/`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from dockyard.api.server.request import Request
from dockyard.api.server.responses import Response

Handler = Callable[[Request], Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def repl(m: re.Match[str]) -> str:
            return f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})"

        rx = re.compile("^" + _PARAM.sub(repl, pattern) + "/?$")
        self._routes.append((method.upper(), rx, handler))
        if method.upper() == "GET":
            self._routes.append(("HEAD", rx, handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """Return (handler, params, path_known)."""
        known = False
        for m, rx, h in self._routes:
            mm = rx.match(path)
            if mm:
                known = True
                if m == method:
                    return h, dict(mm.groupdict()), True
        return None, {}, known
