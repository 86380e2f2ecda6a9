"""Build arguments: `--build-arg` values, `ARG` declarations and their scope.

As in Docker's classic builder: an argument is visible to the instructions
of a stage only after an `ARG` declares it there (the value is the
`--build-arg` one if given, else the declared default, else the global
one an `ARG` before the first `FROM` set); the proxy variables
(`HTTP_PROXY`, `https_proxy`, ...) are predefined and need no `ARG`, and
they are left out of the image history unless the Dockerfile declares
them.  A `--build-arg` no `ARG` consumed is reported with Docker's warning.

Pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping

BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                          "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
                          "ALL_PROXY", "all_proxy"})


class BuildArgs:
    def __init__(self, given: Mapping[str, str | None]) -> None:
        self.given = dict(given)            # from the request; None: named without a value
        self.allowed: dict[str, str | None] = {}
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def clone_for_stage(self) -> BuildArgs:
        """A new stage: the global (meta) args stay, the declared ones go."""
        out = BuildArgs(self.given)
        out.meta = dict(self.meta)
        out.referenced = set(self.referenced)
        return out

    def merge_referenced(self, other: BuildArgs) -> None:
        self.referenced |= other.referenced

    def add_meta(self, key: str, value: str | None) -> None:
        self.meta[key] = value

    def add_arg(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def _value(self, key: str, source: Mapping[str, str | None]) -> str | None:
        given = self.given.get(key)
        if given is not None:
            return given
        default = source.get(key)
        return self.meta.get(key) if default is None else default

    def _all(self, source: Mapping[str, str | None]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in [*source, *sorted(BUILTIN_ARGS - source.keys())]:
            v = self._value(key, source)
            if v is not None:
                out[key] = v
        return out

    def all_allowed(self) -> dict[str, str]:
        """Every argument the current stage's instructions see, with its value."""
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        """The arguments a FROM line sees (those declared before the first FROM)."""
        return self._all(self.meta)

    def filter_allowed(self, env: list[str]) -> list[str]:
        """`KEY=value` for each visible argument the environment does not set."""
        keys = {e.split("=", 1)[0] for e in env}
        return [f"{k}={v}" for k, v in sorted(self.all_allowed().items()) if k not in keys]

    def is_referenced_or_not_builtin(self, key: str) -> bool:
        return key in self.allowed or key not in BUILTIN_ARGS

    def unused_warning(self) -> str | None:
        left = sorted(k for k in self.given
                      if k not in self.referenced and k not in BUILTIN_ARGS)
        if not left:
            return None
        return f"[Warning] One or more build-args [{' '.join(left)}] were not consumed\n"
