"""Variable substitution in Dockerfile words, as Docker's builders do it.

The rules are those of BuildKit's shell lexer, which the classic builder
uses too: quotes are removed (`'...'` literal, `"..."` with `$` and the
escape token still special), the escape token (`\\` or the `# escape=`
directive's) escapes the next character, and `$VAR`, `${VAR}` are replaced
by the variable's value.  Modifiers: `${VAR:-word}` / `${VAR-word}`
(default), `${VAR:+word}` / `${VAR+word}` (alternative), `${VAR:?msg}` /
`${VAR?msg}` (error), `${VAR#pat}` `${VAR##pat}` `${VAR%pat}`
`${VAR%%pat}` (prefix/suffix removal), `${VAR/pat/repl}` and
`${VAR//pat/repl}` (replacement).  Errors carry Docker's texts, wrapped as
`failed to process "<word>": ...`.

`process_word` gives one string (spaces kept); `process_words` splits the
result on unquoted whitespace after substitution (only EXPOSE uses it).

Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.build.gofmt import go_quote
from dockyard.errors import InvalidParameter

EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ExpandError(InvalidParameter):
    """A word that cannot be expanded (an unterminated quote, a bad `${}`)."""


class _Fail(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class _Words:
    """Word splitting of the processed text: whitespace outside quotes splits."""

    buf: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
        return self.words


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class ShellLex:
    """The substitution rules for one Dockerfile (its escape token)."""

    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._run(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._run(word, env)[1]

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        w = _Word(self.escape, env, word)
        try:
            return w.process_until(EOF, False)
        except _Fail as e:
            raise ExpandError(f"failed to process {go_quote(word)}: {e.text}") from None


class _Word:
    def __init__(self, escape: str, env: Mapping[str, str], text: str) -> None:
        self.escape = escape
        self.env = env
        self.sc = _Scanner(text)
        self.raw_escapes = False

    def process_until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        sc = self.sc
        while sc.peek() != EOF:
            ch = sc.peek()
            if stop and ch == stop:
                sc.next()
                return "".join(out), words.result()
            if ch == "$":
                text = self._dollar()
                out.append(text)
                words.add_string(text)
            elif ch in "'\"<":
                text = {"'": self._single, '"': self._double, "<": self._heredoc}[ch]()
                out.append(text)
                words.add_raw(text)
            else:
                ch = sc.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        out.append(ch)
                    ch = sc.next()
                    if ch == EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop:
            raise _Fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.result()

    def _single(self) -> str:
        sc = self.sc
        sc.next()
        out: list[str] = []
        while True:
            ch = sc.next()
            if ch == EOF:
                raise _Fail("unexpected end of statement while looking for matching "
                            "single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        sc = self.sc
        sc.next()
        out: list[str] = []
        while True:
            ch = sc.peek()
            if ch == EOF:
                raise _Fail("unexpected end of statement while looking for matching "
                            "double-quote")
            if ch == '"':
                sc.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = sc.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == EOF:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = sc.next()
            out.append(ch)

    def _heredoc(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek() != EOF:
            space.append(sc.next())
        return "<<" + "".join(space)

    def _name(self) -> str:
        sc = self.sc
        name: list[str] = []
        while sc.peek() != EOF:
            ch = sc.peek()
            if not name and ch.isdigit():
                while sc.peek() != EOF and sc.peek().isdigit():
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(sc.next())
        return "".join(name)

    def _get(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def _dollar(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "{":
            name = self._name()
            return self._get(name)[0] if name else "$"
        sc.next()
        if sc.peek() == EOF:
            raise _Fail("syntax error: missing '}'")
        if sc.peek() in "{}:":
            raise _Fail("syntax error: bad substitution")
        name = self._name()
        ch = sc.next()
        shown = ch if ch else "\ufffd"
        if ch == "}":
            return self._get(name)[0]
        if ch == "/":
            return self._replace(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            shown += ch if ch else "\ufffd"
        elif ch == EOF or ch not in "+-?#%":
            raise _Fail(f"unsupported modifier ({shown}) in substitution")
        raw = ch in ("#", "%") and ch != EOF
        if null_is_unset and raw:
            raise _Fail(f"unsupported modifier ({shown}) in substitution")
        word = self._sub_word("}", raw)
        value, is_set = self._get(name)
        if ch == "-":
            return word if not is_set or (null_is_unset and value == "") else value
        if ch == "+":
            return "" if not is_set or (null_is_unset and value == "") else word
        if ch == "?":
            if not is_set:
                raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("%", "#") and ch != EOF:
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _Fail(f"unsupported modifier ({shown}) in substitution")

    def _sub_word(self, stop: str, raw: bool) -> str:
        try:
            return self.process_until(stop, raw)[0]
        except _Fail:
            if self.sc.peek() == EOF:
                raise _Fail("syntax error: missing '}'") from None
            raise

    def _replace(self, name: str) -> str:
        sc = self.sc
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern = self.process_until("/", True)[0]
        except _Fail:
            if sc.peek() == EOF:
                raise _Fail("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._sub_word("}", True)
        value, _ = self._get(name)
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        return rx.sub(lambda _m: replacement, value, count=1)


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (`*`, `?`, `\\` escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else EOF
            if nxt in ("}", "/") and nxt != EOF:
                continue
            i += 1
            if nxt not in ("*", "?", "\\") or nxt == EOF:
                shown = nxt if nxt else "\ufffd"
                raise _Fail(f"invalid pattern ({pattern}) in substitution: "
                            f"invalid escape '\\{shown}'")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern reversed, keeping each escape before its character."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # the shortest rightmost match is the shortest leftmost one of the reversals
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
