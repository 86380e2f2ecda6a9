""".dockerignore: reading the file and matching paths against its patterns.

Reading follows moby's ignorefile: a line starting with `#` is a comment,
lines are trimmed, `!` marks an exception (itself trimmed after the `!`),
patterns are cleaned and a leading `/` dropped.  Matching follows moby's
patternmatcher: `*` and `?` stay inside one path component, `**` spans any
number of them, the last pattern that matches decides, and a path is
excluded when it or one of its parent directories matches
(`MatchesOrParentMatches`), so `dir` excludes everything below it unless a
later `!dir/keep` brings a path back.

Pure (no I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.build.pathmatch import BadPattern, clean
from dockyard.build.pathmatch import match as go_match
from dockyard.errors import InvalidParameter

_ESCAPE = frozenset(".+()|{}$")


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file's text, as ignorefile.ReadAll gives them."""
    out: list[str] = []
    for n, line in enumerate(text.splitlines()):
        if n == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


@dataclass(frozen=True)
class _Pattern:
    text: str               # cleaned, without the `!`
    exclusion: bool
    depth: int              # number of path components
    kind: str               # exact, prefix, suffix, regexp
    rx: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.rx is not None
        return self.rx.match(path) is not None


def _compile(text: str) -> tuple[str, re.Pattern[str] | None]:
    out = ["^"]
    kind = "exact"
    i = 0
    while i < len(text):
        start = i
        ch = text[i]
        i += 1
        if ch == "*":
            if i < len(text) and text[i] == "*":
                i += 1
                if i < len(text) and text[i] == "/":
                    i += 1
                if i >= len(text):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if start == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(text):
                out.append(re.escape(text[i]))
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
    if kind != "regexp":
        return kind, None
    out.append("$")
    try:
        return kind, re.compile("".join(out), re.DOTALL)
    except re.error:
        raise BadPattern() from None


class IgnoreMatcher:
    """The compiled patterns of one .dockerignore."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise InvalidParameter('illegal exclusion pattern: "!"')
                p = p[1:]
            go_match(p, ".")                        # refuses a malformed pattern
            kind, rx = _compile(p)
            self.patterns.append(_Pattern(p, exclusion, len(p.split("/")), kind, rx))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excludes(self, path: str) -> bool:
        """MatchesOrParentMatches: `path` (relative, `/`-separated) is left out."""
        path = clean(path)
        if path == "." or not self.patterns:
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parents = parent.split("/")
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = p.match(path)
            if not hit and parent != ".":
                hit = any(p.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not p.exclusion
        return matched


def parse_ignore_file(text: str) -> IgnoreMatcher:
    """A .dockerignore's matcher; its errors name the file as dockerd does."""
    try:
        return IgnoreMatcher(read_patterns(text))
    except InvalidParameter as e:
        raise InvalidParameter(f"error reading .dockerignore: {e.message}") from None
