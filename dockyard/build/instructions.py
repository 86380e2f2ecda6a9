"""A Dockerfile's text -> its stages and typed instructions, checked.

The text is parsed by the `dockerfile` package, which wraps BuildKit's own
Dockerfile parser (line continuations, the escape directive, JSON and shell
forms, heredocs).  What it hands back is turned into typed instructions
here with the rules and error texts of BuildKit's `instructions` package,
which Docker's classic builder uses: flags, argument counts, stage names,
health-check options, ONBUILD triggers.  Errors name the line:
`dockerfile parse error on line 2: unknown instruction: FOO (did you mean
FROM?)`.  Parser directives (`# syntax=`, `# escape=`) are read here too;
a `syntax` directive naming any frontend but Docker's own Dockerfile
syntax is refused, since only that syntax is implemented.

Pure (no I/O).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import dockerfile

from dockyard.build.gofmt import go_quote, parse_duration
from dockyard.errors import InvalidParameter

KNOWN = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
         "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
         "workdir")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^<<(-?)\s*([\"']?)([a-zA-Z_][a-zA-Z0-9._-]*)\2$")
_SYNTAX_OK = re.compile(
    r"^(?:docker\.io/)?(?:docker/dockerfile|docker/dockerfile-upstream)(?::[\w.-]+)?"
    r"(?:@sha256:[0-9a-f]{64})?$")


class DockerfileError(InvalidParameter):
    """The Dockerfile cannot be built as written (a 400 before any step)."""


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool
    chomp: bool


@dataclass
class Instruction:
    """What every instruction has: its name (lower case), its source text
    as the step line shows it, and where it is."""

    name: str
    code: str
    line: int


@dataclass
class KeyValues(Instruction):                    # ENV, LABEL
    pairs: list[tuple[str, str]] = field(default_factory=list)
    expand: bool = True


@dataclass
class Arg(Instruction):
    args: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class Maintainer(Instruction):
    text: str = ""


@dataclass
class Copy(Instruction):                          # COPY and ADD
    sources: list[str] = field(default_factory=list)
    dest: str = ""
    inline: list[Heredoc] = field(default_factory=list)
    chown: str = ""
    chmod: str = ""
    from_: str = ""
    unsupported: list[str] = field(default_factory=list)    # flags given, not done


@dataclass
class Onbuild(Instruction):
    expression: str = ""


@dataclass
class Workdir(Instruction):
    path: str = ""


@dataclass
class Command(Instruction):                       # RUN, CMD, ENTRYPOINT
    cmdline: list[str] | None = None
    prepend_shell: bool = True
    heredocs: list[Heredoc] = field(default_factory=list)
    flags_used: list[str] = field(default_factory=list)


@dataclass
class Healthcheck(Instruction):
    config: dict[str, object] = field(default_factory=dict)


@dataclass
class Words(Instruction):                         # EXPOSE, VOLUME, SHELL
    words: list[str] = field(default_factory=list)


@dataclass
class Word(Instruction):                          # USER, STOPSIGNAL
    word: str = ""


@dataclass
class Stage:
    name: str                 # lower case, "" when unnamed
    base: str
    platform: str
    code: str                 # the FROM line as written
    line: int
    commands: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    meta_args: list[Arg]
    stages: list[Stage]
    escape: str = "\\"
    syntax: str = ""

    def stage_index(self, name: str) -> int | None:
        for i, s in enumerate(self.stages):
            if s.name and s.name == name.lower():
                return i
        return None


# --------------------------------------------------------------------- directives

def read_directives(text: str) -> dict[str, str]:
    """The parser directives at the top of the file (`# escape=`, `# syntax=`)."""
    out: dict[str, str] = {}
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    for line in lines:
        if not line.startswith("#"):
            break
        m = _DIRECTIVE.match(line[1:].lstrip())
        if not m:
            break
        key = m.group(1).lower()
        if key not in ("syntax", "escape", "check"):
            break
        if key in out:
            raise DockerfileError(f"only one {key} parser directive can be used")
        out[key] = m.group(2)
    return out


def check_syntax(value: str) -> None:
    ref = value.split(" ", 1)[0]
    if not _SYNTAX_OK.match(ref):
        raise DockerfileError(
            f"unsupported frontend {go_quote(ref)} in the syntax parser directive: this "
            "builder implements Docker's standard Dockerfile syntax (docker/dockerfile) "
            "only; remove the directive or use docker/dockerfile")


# --------------------------------------------------------------------- flags

class _Flags:
    """BuildKit's BFlags: `--name=value` before the arguments."""

    def __init__(self, raw: tuple[str, ...], known: dict[str, str]) -> None:
        self.values: dict[str, str] = {}
        self.multi: dict[str, list[str]] = {}
        self.used: list[str] = []
        for a in raw:
            if a == "--":
                break
            if not a.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {a}")
            name, has_value, value = a.partition("=")
            flag = name[2:]
            kind = known.get(flag)
            if kind is None:
                msg = f"unknown flag: {name}"
                guess = _suggest(flag, list(known), case_sensitive=True)
                raise DockerfileError(msg + (f" (did you mean {guess}?)" if guess else ""))
            if flag in self.used and kind != "strings":
                raise DockerfileError(f"duplicate flag specified: {name}")
            if flag not in self.used:
                self.used.append(flag)
            if kind == "bool":
                if has_value and value == "":
                    raise DockerfileError(f"missing a value on flag: {name}")
                if value.lower() not in ("true", "false", ""):
                    raise DockerfileError(
                        f"expecting boolean value for flag {name}, not: {value}")
                self.values[flag] = "false" if value.lower() == "false" else "true"
            else:
                if not has_value:
                    raise DockerfileError(f"missing a value on flag: {name}")
                if kind == "strings":
                    self.multi.setdefault(flag, []).append(value)
                else:
                    self.values[flag] = value

    def get(self, name: str) -> str:
        return self.values.get(name, "")


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _suggest(value: str, options: list[str], case_sensitive: bool) -> str:
    """BuildKit's suggest.Search: the closest option at distance < 3."""
    val = value if case_sensitive else value.lower()
    best, best_dist = "", 3
    for opt in sorted(options):
        o = opt if case_sensitive else opt.lower()
        if o == val:
            return ""
        d = _levenshtein(val, o)
        if d < best_dist:
            best, best_dist = o, d
            if not case_sensitive:
                if value == value.lower():
                    best = o.lower()
                elif value == value.upper():
                    best = o.upper()
    return best


# --------------------------------------------------------------------- instructions

def parse_heredoc_word(word: str) -> Heredoc | None:
    m = _HEREDOC.match(word)
    if m is None:
        return None
    return Heredoc(name=m.group(3), content="", expand=not m.group(2), chomp=bool(m.group(1)))


def _heredocs(cmd: dockerfile.Command, words: list[str]) -> list[Heredoc]:
    """The heredocs of an instruction, with the flags their `<<` words carry."""
    marks = {}
    for w in words:
        for piece in w.split():
            h = parse_heredoc_word(piece)
            if h is not None:
                marks[h.name] = h
    out = []
    for doc in cmd.heredocs:
        mark = marks.get(doc.name, Heredoc(doc.name, "", True, False))
        content = doc.content
        if mark.chomp:
            content = re.sub(r"(?m)^\t+", "", content)
        out.append(Heredoc(doc.name, content, mark.expand, mark.chomp))
    return out


def _one(name: str, args: tuple[str, ...]) -> str:
    if len(args) != 1:
        raise DockerfileError(f"{name} requires exactly one argument")
    return args[0]


def _kvs(name: str, args: tuple[str, ...]) -> list[tuple[str, str]]:
    if not args:
        raise DockerfileError(f"{name} requires at least one argument")
    if len(args) % 2:
        raise DockerfileError(f"Bad input to {name}, too many arguments")
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
    if any(k == "" for k, _ in pairs):
        raise DockerfileError(f"{name} names can not be blank")
    return pairs


def _cmdline(cmd: dockerfile.Command, empty_as_none: bool) -> list[str] | None:
    args = list(cmd.value)
    if not args:
        return None if empty_as_none else []
    return args if cmd.json else [" ".join(args)]


def _healthcheck(cmd: dockerfile.Command, code: str, line: int) -> Healthcheck:
    args = cmd.value
    if not args:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind = args[0].upper()
    if kind == "NONE":
        if len(args) != 1:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck("healthcheck", code, line, {"Test": ["NONE"]})
    flags = _Flags(cmd.flags, {k: "string" for k in (
        "interval", "timeout", "start-period", "start-interval", "retries")})
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    rest = list(args[1:]) if cmd.json else ([" ".join(args[1:])] if args[1:] else [])
    if not rest:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    hc: dict[str, object] = {"Test": ["CMD" if cmd.json else "CMD-SHELL", *rest]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = flags.get(flag)
        ns = parse_duration(value) if value else 0
        if 0 < ns < 1_000_000:
            raise DockerfileError(f"Interval {go_quote(flag)} cannot be less than 1ms")
        hc[key] = ns
    retries = flags.get("retries")
    if retries:
        if not re.fullmatch(r"[+-]?[0-9]+", retries) or not -2**31 <= int(retries) < 2**31:
            raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(retries)}: "
                                  + ("value out of range" if re.fullmatch(
                                      r"[+-]?[0-9]+", retries) else "invalid syntax"))
        if int(retries) < 0:
            raise DockerfileError(f"--retries cannot be negative ({int(retries)})")
    hc["Retries"] = int(retries) if retries else 0
    return Healthcheck("healthcheck", code, line, hc)


def _copy(cmd: dockerfile.Command, name: str, code: str, line: int) -> Copy:
    args = cmd.value
    upper = name.upper()
    if len(args) < 2:
        raise DockerfileError(f"{upper} requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")
    known = {"chown": "string", "chmod": "string", "link": "bool", "exclude": "strings"}
    if name == "add":
        known.update({"keep-git-dir": "bool", "checksum": "string", "unpack": "bool"})
    else:
        known.update({"from": "string", "parents": "bool"})
    flags = _Flags(cmd.flags, known)
    if parse_heredoc_word(args[-1]) is not None:
        raise DockerfileError(f"{upper} cannot accept a heredoc as a destination")
    docs = {h.name: h for h in _heredocs(cmd, list(args))}
    sources, inline = [], []
    for src in args[:-1]:
        h = parse_heredoc_word(src)
        if h is not None and not cmd.json:
            inline.append(docs.get(h.name, h))
        else:
            sources.append(src)
    unsupported = [f for f in flags.used if f not in ("chown", "chmod", "from")]
    return Copy(name, code, line, sources=sources, dest=args[-1], inline=inline,
                chown=flags.get("chown"), chmod=flags.get("chmod"), from_=flags.get("from"),
                unsupported=unsupported)


def _arg(args: tuple[str, ...], code: str, line: int) -> Arg:
    if not args:
        raise DockerfileError("ARG requires at least one argument")
    out: list[tuple[str, str | None]] = []
    for a in args:
        if "=" in a:
            k, v = a.split("=", 1)
            if not k:
                raise DockerfileError("ARG names can not be blank")
            out.append((k, v))
        else:
            out.append((a, None))
    return Arg("arg", code, line, args=out)


def _onbuild(cmd: dockerfile.Command, code: str, line: int) -> Onbuild:
    if not cmd.sub_cmd:
        raise DockerfileError("ONBUILD requires at least one argument")
    trigger = cmd.sub_cmd.strip().upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    first, _, rest = cmd.original.partition("\n")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", first)
    if rest:
        expression += "\n" + rest.rstrip("\n")
    return Onbuild("onbuild", code, line, expression=expression)


def _from(cmd: dockerfile.Command, code: str, line: int) -> Stage:
    args = cmd.value
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(f"invalid name for build stage: {go_quote(args[2])}, name "
                                  "can't start with a number or contain symbols")
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    flags = _Flags(cmd.flags, {"platform": "string"})
    return Stage(name=name, base=args[0], platform=flags.get("platform"), code=code, line=line)


def parse_instruction(cmd: dockerfile.Command) -> Instruction | Stage:
    """One parsed line as a typed instruction (or a stage, for FROM)."""
    name = cmd.cmd.lower()
    code = cmd.original.strip()
    line = cmd.start_line
    args = cmd.value
    simple_flags = name not in ("add", "copy", "from", "healthcheck", "run")
    if simple_flags:
        _Flags(cmd.flags, {})
    if name in ("env", "label"):
        return KeyValues(name, code, line, pairs=_kvs(name.upper(), args))
    if name == "maintainer":
        return Maintainer(name, code, line, text=_one("MAINTAINER", args))
    if name in ("add", "copy"):
        return _copy(cmd, name, code, line)
    if name == "from":
        return _from(cmd, code, line)
    if name == "onbuild":
        return _onbuild(cmd, code, line)
    if name == "workdir":
        return Workdir(name, code, line, path=_one("WORKDIR", args))
    if name == "run":
        flags = _Flags(cmd.flags, {"mount": "strings", "network": "string",
                                   "device": "strings"})
        return Command(name, code, line, cmdline=_cmdline(cmd, False),
                       prepend_shell=not cmd.json, heredocs=_heredocs(cmd, list(args)),
                       flags_used=flags.used)
    if name in ("cmd", "entrypoint"):
        return Command(name, code, line, cmdline=_cmdline(cmd, name == "entrypoint"),
                       prepend_shell=not cmd.json)
    if name == "healthcheck":
        return _healthcheck(cmd, code, line)
    if name == "expose":
        if not args:
            raise DockerfileError("EXPOSE requires at least one argument")
        return Words(name, code, line, words=sorted(args))
    if name == "volume":
        if not args:
            raise DockerfileError("VOLUME requires at least one argument")
        vols = [v.strip() for v in args]
        if any(v == "" for v in vols):
            raise DockerfileError("VOLUME specified can not be an empty string")
        return Words(name, code, line, words=vols)
    if name == "shell":
        shell = list(args) if cmd.json else ([" ".join(args)] if args else [])
        if not shell:
            raise DockerfileError("SHELL requires at least one argument")
        if not cmd.json:
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
        return Words(name, code, line, words=shell)
    if name in ("user", "stopsignal"):
        return Word(name, code, line, word=_one(name.upper(), args))
    if name == "arg":
        return _arg(args, code, line)
    guess = _suggest(cmd.cmd, [k.upper() for k in KNOWN], case_sensitive=False)
    msg = f"unknown instruction: {cmd.cmd}"
    raise DockerfileError(msg + (f" (did you mean {guess}?)" if guess else ""))


def _at_line(line: int, e: InvalidParameter) -> DockerfileError:
    return DockerfileError(f"dockerfile parse error on line {line}: {e.message}")


def parse_dockerfile(data: bytes, name: str = "Dockerfile") -> Dockerfile:
    """The stages of a Dockerfile; DockerfileError with Docker's texts."""
    if not data:
        raise DockerfileError(f"the Dockerfile ({name}) cannot be empty")
    text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    try:
        directives = read_directives(text)
    except DockerfileError as e:
        raise DockerfileError(f"failed to parse {name}: {e.message}") from None
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"failed to parse {name}: invalid escape token '{escape}' "
                              "does not match ` or \\")
    if "syntax" in directives:
        check_syntax(directives["syntax"])
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        raise DockerfileError(f"failed to parse {name}: {e}") from None
    meta: list[Arg] = []
    stages: list[Stage] = []
    for cmd in commands:
        try:
            inst = parse_instruction(cmd)
        except InvalidParameter as e:
            raise _at_line(cmd.start_line, e) from None
        if isinstance(inst, Stage):
            stages.append(inst)
        elif not stages and isinstance(inst, Arg):
            meta.append(inst)
        elif not stages:
            raise DockerfileError("no build stage in current context")
        else:
            stages[-1].commands.append(inst)
    return Dockerfile(meta_args=meta, stages=stages, escape=escape,
                      syntax=directives.get("syntax", ""))


def parse_trigger(expression: str) -> Instruction:
    """An ONBUILD trigger, parsed when an image built with it is used as a base."""
    try:
        commands = dockerfile.parse_string(expression)
    except dockerfile.GoParseError as e:
        raise DockerfileError(str(e)) from None
    if len(commands) != 1:
        raise DockerfileError("onbuild trigger should be a single expression")
    try:
        inst = parse_instruction(commands[0])
    except InvalidParameter as e:
        raise _at_line(commands[0].start_line, e) from None
    if isinstance(inst, Stage):
        raise DockerfileError("FROM isn't allowed as an ONBUILD trigger")
    return inst


def json_array_or_none(text: str) -> list[str] | None:
    """A JSON array of strings, or None (the exec form check of SHELL-less forms)."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
