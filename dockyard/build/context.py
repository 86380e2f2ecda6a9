"""The build context as a tree of entries, and COPY/ADD's view of it.

The context arrives as a tar; the driver records each member here (its
name, type, mode, owner, size, link target and where its data is) without
writing anything to disk.  Everything the builder asks of the context is
answered from this tree, so a hostile archive never meets the host's file
system:

- names are cleaned; a name that climbs out (`../x`) and a relative
  symlink whose target leaves the context are refused, as dockerd's
  untar refuses them; an absolute name is taken inside the context, as
  dockerd takes it;
- paths are resolved as moby's FollowSymlinkInScope resolves them: a
  symlink is followed inside the context only, `..` stops at its root;
- COPY's sources: a path (a missing one or one outside the context gives
  dockerd's "COPY failed: ..." texts), or a wildcard matched as Go's
  filepath.Match against every path in the context;
- each source's checksum, which the cache compares: file headers (name,
  mode, owner, size, type, link) and contents, never modification times.

Pure (no I/O): contents are digested by a function the driver passes in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dockyard.build.ignore import IgnoreMatcher
from dockyard.build.pathmatch import clean, has_wildcards
from dockyard.build.pathmatch import match as go_match
from dockyard.errors import InvalidParameter

MAX_SYMLINKS = 255
FILE, DIR, SYMLINK, FIFO = "file", "dir", "symlink", "fifo"


class ContextError(InvalidParameter):
    """The context archive cannot be used (an escaping name or link)."""


@dataclass
class Entry:
    path: str                  # cleaned, relative, "" is the root
    kind: str                  # FILE, DIR, SYMLINK, FIFO
    mode: int = 0o755          # permission bits (and setuid/setgid/sticky)
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    offset: int = -1           # where the data is in the spooled archive
    ref: str = ""              # or the file's path on the host (an image's tree)
    digest: str = ""           # sha256 of the data, once the driver computed it
    implicit: bool = False     # a parent the archive did not list
    children: dict[str, Entry] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def clean_member_name(name: str) -> str:
    """A tar member's name as a context path; ContextError if it climbs out."""
    rel = clean("/" + name.replace("\\", "/"))[1:] if name.startswith("/") else clean(name)
    if rel in (".", ""):
        return ""
    if rel == ".." or rel.startswith("../"):
        raise ContextError(f"Error processing tar file(exit status 1): {name!r} is outside "
                           "of the build context")
    return rel


class ContextTree:
    def __init__(self) -> None:
        self.root = Entry("", DIR, 0o755, implicit=True)

    # ------------------------------------------------------------ building
    def _parent(self, path: str) -> Entry:
        node = self.root
        if "/" not in path:
            return node
        for part in path.split("/")[:-1]:
            nxt = node.children.get(part)
            if nxt is None or nxt.kind != DIR:
                sub = part if not node.path else f"{node.path}/{part}"
                nxt = Entry(sub, DIR, 0o755, implicit=True)
                node.children[part] = nxt
            node = nxt
        return node

    def add(self, entry: Entry) -> None:
        """Record one archive member (a later one replaces an earlier one,
        as extraction would; a directory keeps what is already below it)."""
        if entry.path == "":
            if entry.kind == DIR:
                self.root.mode, self.root.uid, self.root.gid = entry.mode, entry.uid, entry.gid
                self.root.mtime, self.root.implicit = entry.mtime, False
            return
        if entry.kind == SYMLINK:
            _check_link(entry)
        parent = self._parent(entry.path)
        old = parent.children.get(entry.name)
        if old is not None and old.kind == DIR and entry.kind == DIR:
            entry.children = old.children
        parent.children[entry.name] = entry

    def remove(self, path: str) -> None:
        path = clean(path)
        if path in (".", ""):
            return
        node = self.lookup(path.rsplit("/", 1)[0] if "/" in path else "")
        if node is not None and node.kind == DIR:
            node.children.pop(path.rsplit("/", 1)[-1], None)

    def apply_ignore(self, matcher: IgnoreMatcher) -> None:
        """Drop what .dockerignore excludes; a directory that is excluded but
        holds a path brought back by a `!` exception stays as a parent."""
        if not matcher:
            return

        def prune(node: Entry) -> bool:
            keep_any = False
            for name in list(node.children):
                child = node.children[name]
                excluded = matcher.excludes(child.path)
                kept_below = prune(child) if child.kind == DIR else False
                if excluded and not kept_below:
                    del node.children[name]
                else:
                    if excluded:
                        child.implicit = True
                    keep_any = True
            return keep_any

        prune(self.root)

    # ------------------------------------------------------------ lookups
    def lookup(self, path: str) -> Entry | None:
        """The entry at a cleaned relative path, not following symlinks."""
        node = self.root
        if path in ("", "."):
            return node
        for part in path.split("/"):
            if node.kind != DIR:
                return None
            nxt = node.children.get(part)
            if nxt is None:
                return None
            node = nxt
        return node

    def resolve(self, path: str) -> str:
        """FollowSymlinkInScope: the path with every symlink followed inside
        the context (the result may not exist).  `path` must already be
        inside (see `inside`)."""
        todo = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            node = self.lookup("/".join([*done, part]))
            if node is None or node.kind != SYMLINK:
                done.append(part)
                continue
            links += 1
            if links > MAX_SYMLINKS:
                raise InvalidParameter(f"too many links in {path}")
            target = node.linkname
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p and p != "."] + todo
        return "/".join(done)

    def walk(self, top: Entry) -> Iterator[Entry]:
        """`top` and everything below it, in lexical order, not into symlinks."""
        stack = [top]
        while stack:
            node = stack.pop()
            yield node
            if node.kind == DIR:
                stack.extend(node.children[n] for n in sorted(node.children, reverse=True))


def _check_link(entry: Entry) -> None:
    target = entry.linkname
    if target.startswith("/"):
        return
    parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
    joined = clean(f"{parent}/{target}" if parent else target)
    if joined == ".." or joined.startswith("../"):
        raise ContextError(f"Error processing tar file(exit status 1): invalid symlink "
                           f"{entry.path!r} -> {target!r}")


def inside(path: str) -> str | None:
    """A COPY source as a context path, or None when it climbs out."""
    p = path.lstrip("/")
    p = p.removeprefix("./")
    rel = clean(p) if p else "."
    if rel == ".." or rel.startswith("../"):
        return None
    return "" if rel == "." else rel


# ------------------------------------------------------------------ COPY sources

@dataclass(frozen=True)
class Source:
    """One thing COPY reads: `path` as named (its base name is kept for a
    file), `entry` what it resolves to."""

    path: str
    entry: Entry
    hash: str


Digest = Callable[[Entry], str]


def _header(e: Entry, name: str) -> str:
    return f"{name}\x00{e.kind}\x00{e.mode & 0o7777:o}\x00{e.uid}\x00{e.gid}\x00" \
           f"{e.size}\x00{e.linkname}"


def entry_hash(e: Entry, name: str, digest: Digest) -> str:
    h = hashlib.sha256(_header(e, name).encode("utf-8", "surrogateescape"))
    if e.kind == FILE and e.size:
        h.update(digest(e).encode())
    return h.hexdigest()


def _not_found(orig: str, cmd: str) -> InvalidParameter:
    return InvalidParameter(f"{cmd} failed: file not found in build context or excluded by "
                            f".dockerignore: stat {orig}: file does not exist")


def source_info(tree: ContextTree, orig: str, cmd: str, digest: Digest,
                from_image: bool = False) -> Source:
    """One source path (no wildcards) as COPY/ADD reads it."""
    rel = inside(orig)
    if rel is None:
        raise InvalidParameter(f"{cmd} failed: forbidden path outside the build context: "
                               f"{orig} ()")
    resolved = tree.resolve(rel)
    entry = tree.lookup(resolved)
    if entry is None:
        if from_image:
            raise InvalidParameter(f"{cmd} failed: stat {rel or '.'}: file does not exist")
        raise _not_found(rel or ".", cmd)
    if entry.kind != DIR:
        return Source(rel, entry, "file:" + entry_hash(entry, rel, digest))
    sums = sorted(entry_hash(e, e.path, digest) for e in tree.walk(entry) if e is not entry)
    return Source(rel, entry, "dir:" + hashlib.sha256(",".join(sums).encode()).hexdigest())


def sources(tree: ContextTree, patterns: list[str], cmd: str, digest: Digest,
            from_image: bool = False) -> list[Source]:
    """Every source a COPY/ADD names, wildcards expanded (moby's copier)."""
    out: list[Source] = []
    for orig in patterns:
        rel = inside(orig)
        if rel is not None and has_wildcards(rel):
            matched = [e for e in tree.walk(tree.root)
                       if e.path and go_match(rel, e.path)]
            for e in matched:
                out.append(source_info(tree, e.path, cmd, digest, from_image))
            continue
        out.append(source_info(tree, orig, cmd, digest, from_image))
    if not out:
        raise InvalidParameter(f"{cmd} failed: no source files were specified")
    return out


def sources_hash(found: list[Source]) -> str:
    if len(found) == 1:
        return found[0].hash
    joined = ",".join(s.hash for s in found)
    return "multi:" + hashlib.sha256(joined.encode()).hexdigest()
