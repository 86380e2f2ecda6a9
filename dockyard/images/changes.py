"""`--change` instructions (import, commit) applied to an image Config.

Each change is one Dockerfile instruction.  Docker allows only the ones that
change metadata (`validCommitCommands` in moby's dockerfile builder) and
rejects others with `<cmd> is not a valid change command`.  Forms follow the
Dockerfile reference: exec (JSON array) or shell form for CMD/ENTRYPOINT,
`KEY=VALUE ...` or legacy `KEY VALUE` for ENV/LABEL.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from dockyard.errors import InvalidParameter

VALID_CHANGE_COMMANDS = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                         "onbuild", "stopsignal", "user", "volume", "workdir")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9,
                "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_go_duration(s: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s" -> 90e9)."""
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if body == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_NS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise InvalidParameter(f'time: invalid duration "{s}"')
    return sign * int(total)


def split_words(s: str) -> list[str]:
    """Dockerfile word splitting: whitespace-separated, quotes and \\ escapes."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(s):
                i += 1
                cur.append(s[i])
            else:
                cur.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c == "\\" and i + 1 < len(s):
            i += 1
            cur.append(s[i])
            in_word = True
        elif c.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            cur.append(c)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


def _json_or_shell(rest: str, shell: list[str]) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            val = json.loads(rest)
            if isinstance(val, list) and all(isinstance(x, str) for x in val):
                return val
        except (ValueError, RecursionError):
            pass
    return [*shell, rest]


def _key_values(cmd: str, rest: str) -> list[tuple[str, str]]:
    words = split_words(rest)
    if not words:
        raise InvalidParameter(f"{cmd.upper()} requires at least one argument")
    if "=" not in words[0]:
        # legacy form: ENV KEY value with spaces
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{cmd.upper()} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidParameter(f"Syntax error - can't find = in \"{w}\". "
                                   "Must be of the form: name=value")
        k, v = w.split("=", 1)
        out.append((k, v))
    return out


def _healthcheck(rest: str) -> dict[str, Any]:
    words = rest.split()
    hc: dict[str, Any] = {}
    while words and words[0].startswith("--"):
        opt, _, val = words.pop(0)[2:].partition("=")
        key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
               "start-interval": "StartInterval", "retries": "Retries"}.get(opt)
        if key is None:
            raise InvalidParameter(f"Unknown flag: {opt}")
        hc[key] = int(val) if key == "Retries" else parse_go_duration(val)
    if not words:
        raise InvalidParameter("Missing command after HEALTHCHECK")
    kind = words[0].upper()
    if kind == "NONE":
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    after = rest.split(words[0], 1)[1].strip() if words[0] in rest else ""
    test = _json_or_shell(after, [])
    hc["Test"] = ["CMD", *test] if after.startswith("[") else ["CMD-SHELL", after]
    return hc


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile-style changes to a Docker Config dict (new dict)."""
    cfg = json.loads(json.dumps(config))
    cmd_set = False            # moby's dispatchState.cmdSet: a CMD in this change list
    for change in changes:
        change = change.strip()
        if not change:
            continue
        cmd, _, rest = change.partition(" ")
        if "\t" in cmd:
            cmd, _, more = cmd.partition("\t")
            rest = more + " " + rest
        lc = cmd.lower()
        if lc not in VALID_CHANGE_COMMANDS:
            raise InvalidParameter(f"{lc} is not a valid change command")
        rest = rest.strip()
        if lc == "cmd":
            cfg["Cmd"] = _json_or_shell(rest, ["/bin/sh", "-c"])
            cmd_set = True
        elif lc == "entrypoint":
            cfg["Entrypoint"] = _json_or_shell(rest, ["/bin/sh", "-c"])
            if not cmd_set:            # ENTRYPOINT resets only an inherited CMD
                cfg.pop("Cmd", None)
        elif lc == "env":
            env = list(cfg.get("Env") or [])
            for k, v in _key_values(lc, rest):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif lc == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_key_values(lc, rest))
            cfg["Labels"] = labels
        elif lc == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in split_words(rest):
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif lc == "volume":
            vols = dict(cfg.get("Volumes") or {})
            for v in _json_or_shell(rest, []) if rest.startswith("[") else split_words(rest):
                vols[v] = {}
            cfg["Volumes"] = vols
        elif lc == "workdir":
            wd = rest
            if not posixpath.isabs(wd):
                wd = posixpath.join(cfg.get("WorkingDir") or "/", wd)
            cfg["WorkingDir"] = posixpath.normpath(wd)
        elif lc == "user":
            cfg["User"] = rest
        elif lc == "stopsignal":
            cfg["StopSignal"] = rest
        elif lc == "onbuild":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
        elif lc == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
    return cfg
