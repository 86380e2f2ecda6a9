"""Go's encoding/json rules, applied to an already parsed JSON value.

dockerd decodes every request body into a Go struct.  `decode(value, T)`
gives back what that struct would hold, as plain dicts and lists with
Docker's field names, or raises InvalidParameter with Go's text:

- An object key names a field exactly, else case-insensitively (Go folds
  ASCII letters and the two non-ASCII runes that fold onto them); the value
  is stored under the field's own spelling.  Keys that name no field are
  dropped, as Go ignores them.  A field given twice keeps the later value,
  except that a null never overwrites (it leaves a Go value untouched) and
  two objects merge (Go decodes the second into the first).
- Map keys stay exactly as sent (label names, ports, sysctls); only map
  values are decoded.
- A value must fit the field's Go type: booleans, strings, integers within
  the type's range (no fraction, no exponent: Go's ParseInt), slices, fixed
  arrays (extra elements dropped, missing ones zero), maps, structs.
  moby's StrSlice also takes a single string.
- Errors read `json: cannot unmarshal <what> into Go struct field
  <Struct>.<path> of type <type>`: Struct is the innermost struct being
  decoded, path the field names from the top, with the Go names of embedded
  structs (`HostConfig.HostConfig.Resources.Memory`), as Go >= 1.20 prints.
  A number that does not fit an integer is quoted with its literal text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dockyard.errors import InvalidParameter

_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}
# Non-ASCII runes whose fold set's smallest member is ASCII (Go's foldRune)
_ASCII_UPPER.update({0x017F: ord("S"), 0x212A: ord("K")})


def fold(name: str) -> str:
    """Go's foldName: the key a case-insensitive field match compares."""
    return name.translate(_ASCII_UPPER)


@dataclass(frozen=True)
class GoType:
    go: str                       # the type as Go prints it in errors


@dataclass(frozen=True)
class Bool(GoType):
    go: str = "bool"


@dataclass(frozen=True)
class Str(GoType):
    go: str = "string"


@dataclass(frozen=True)
class Int(GoType):
    go: str = "int64"
    lo: int = -(1 << 63)
    hi: int = (1 << 63) - 1


INT64 = Int()
INT = Int("int")
UINT16 = Int("uint16", 0, (1 << 16) - 1)
UINT64 = Int("uint64", 0, (1 << 64) - 1)
UINT = Int("uint", 0, (1 << 64) - 1)
DURATION = Int("time.Duration")


@dataclass(frozen=True)
class StrSlice(GoType):
    """moby's strslice.StrSlice: a list of strings, or one string."""

    go: str = "string"


@dataclass(frozen=True)
class Slice(GoType):
    elem: GoType = field(default_factory=Str)


@dataclass(frozen=True)
class Array(GoType):
    elem: GoType = field(default_factory=Str)
    length: int = 0


@dataclass(frozen=True)
class Map(GoType):
    elem: GoType = field(default_factory=Str)


@dataclass(frozen=True)
class Empty(GoType):
    """struct{}: any object (its keys are ignored)."""

    go: str = "struct {}"


@dataclass(frozen=True)
class Field:
    name: str                     # the JSON name
    type: GoType
    via: tuple[str, ...] = ()     # Go names of the embedded structs it is promoted from


@dataclass(frozen=True)
class Struct(GoType):
    name: str = ""                # reflect's Name(), e.g. "HostConfig"
    fields: tuple[Field, ...] = ()

    @cached_property
    def exact(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def folded(self) -> dict[str, Field]:
        return {fold(f.name): f for f in self.fields}

    def field(self, name: str) -> Field:
        return self.exact[name]


def slice_of(elem: GoType, go: str | None = None) -> Slice:
    return Slice(go or f"[]{elem.go}", elem)


def map_of(elem: GoType, go: str | None = None) -> Map:
    return Map(go or f"map[string]{elem.go}", elem)


def struct(go: str, *fields: Field, embed: tuple[str, Struct] | None = None) -> Struct:
    """A struct type; `embed` promotes another struct's fields (Go embedding)."""
    own = list(fields)
    if embed is not None:
        via, inner = embed
        own[:0] = [Field(f.name, f.type, (via, *f.via)) for f in inner.fields]
    return Struct(go, go.rpartition(".")[2], tuple(own))


def fields(kind: GoType, *names: str) -> tuple[Field, ...]:
    return tuple(Field(n, kind) for n in names)


STRS = slice_of(Str())
STRMAP = map_of(Str())


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """Go's %q (strconv.Quote): how Docker shows a value with odd characters."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------- decoding

# Where a value sits: None at the top, else (where the struct was, the
# struct, the field); the path is only spelled out when an error needs it.
_Where = tuple[Any, Struct, Field] | None


def _context(where: _Where) -> tuple[str, list[str]]:
    """(innermost struct's name, field path from the top) of a position."""
    if where is None:
        return "", []
    outer, s, f = where
    _, path = _context(outer)
    return s.name, [*path, *f.via, f.name]


def _what(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def number_text(v: float) -> str:
    """The literal Go quotes: a float parsed by the API keeps its text."""
    if isinstance(v, int):
        return str(v)
    return getattr(v, "text", None) or repr(v)


def type_error(what: str, where: _Where, go: str) -> InvalidParameter:
    struct_name, path = _context(where)
    into = f"Go struct field {struct_name}.{'.'.join(path)}" if struct_name else "Go value"
    return InvalidParameter(f"invalid JSON: json: cannot unmarshal {what} into {into} "
                            f"of type {go}")


def zero(t: GoType) -> Any:
    """The zero value a null element of a slice or map becomes."""
    if isinstance(t, Bool):
        return False
    if isinstance(t, Int):
        return 0
    if isinstance(t, Str):
        return ""
    if isinstance(t, (Struct, Empty)):
        return {}
    return None


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for k, v in new.items():
            if v is not None or k not in out:
                out[k] = _merge(out.get(k), v)
        return out
    return new


def _value(v: Any, t: GoType, where: _Where) -> Any:
    if v is None:
        return None
    kind = type(t)
    if kind is Str:
        if type(v) is not str:
            raise type_error(_what(v), where, t.go)
        return v
    if kind is Bool:
        if type(v) is not bool:
            raise type_error(_what(v), where, t.go)
        return v
    if kind is Int:
        assert isinstance(t, Int)
        if type(v) is not int:
            if isinstance(v, float):
                raise type_error(f"number {number_text(v)}", where, t.go)
            raise type_error(_what(v), where, t.go)
        if not t.lo <= v <= t.hi:
            raise type_error(f"number {v}", where, t.go)
        return v
    if kind is Struct:
        assert isinstance(t, Struct)
        return _struct(v, t, where)
    if kind is StrSlice:
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list) or not all(x is None or isinstance(x, str) for x in v):
            raise type_error(_what(v), where, t.go)
        return ["" if x is None else x for x in v]
    if kind is Slice or kind is Array:
        assert isinstance(t, (Slice, Array))
        if not isinstance(v, list):
            raise type_error(_what(v), where, t.go)
        items = [zero(t.elem) if x is None else _value(x, t.elem, where) for x in v]
        if isinstance(t, Array):
            items = items[:t.length] + [zero(t.elem)] * (t.length - len(items))
        return items
    if kind is Map:
        assert isinstance(t, Map)
        if not isinstance(v, dict):
            raise type_error(_what(v), where, t.go)
        return {k: zero(t.elem) if x is None else _value(x, t.elem, where)
                for k, x in v.items()}
    if kind is Empty:
        if not isinstance(v, dict):
            raise type_error(_what(v), where, t.go)
        return {}
    raise AssertionError(f"no decoder for {t!r}")


def _struct(obj: Any, t: Struct, where: _Where) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise type_error(_what(obj), where, t.go)
    exact, folded = t.exact, t.folded
    out: dict[str, Any] = {}
    for key, raw in obj.items():
        f = exact.get(key) or folded.get(fold(key))
        if f is None:
            continue
        v = _value(raw, f.type, (where, t, f))
        if f.name in out:
            v = _merge(out[f.name], v) if v is not None else out[f.name]
        out[f.name] = v
    return out


def decode(value: Any, t: Struct) -> dict[str, Any]:
    """A request body as Go would decode it into `t` (see the module doc)."""
    return _struct(value, t, None)


def is_zero(v: Any, t: GoType | None = None) -> bool:
    """A decoded value that asks for nothing: Go's zero value, null, an empty
    slice or map, or (given its type) a struct whose every field is zero."""
    if isinstance(t, Struct) and isinstance(v, Mapping):
        types = {f.name: f.type for f in t.fields}
        return all(is_zero(x, types.get(k)) for k, x in v.items())
    if isinstance(v, (Mapping, list)):
        return not v
    return v is None or v is False or v == 0 or v == ""
