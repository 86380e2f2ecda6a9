"""Resolve `Config.User` and `HostConfig.GroupAdd` against the image's
/etc/passwd and /etc/group text (moby/sys/user GetExecUser semantics).

The engine reads the two files from the container's root filesystem and
passes their text, or None when a file does not exist (then only numeric ids
work, as with Docker).

Texts: `unable to find user X: no matching entries in passwd file`,
`unable to find group X: no matching entries in group file` (for
`--group-add`: `Unable to find group X: ...`, as moby/sys/user says it),
`uids and gids must be in range 0-2147483647`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

MIN_ID = 0
MAX_ID = 2**31 - 1
_RANGE_ERR = f"uids and gids must be in range {MIN_ID}-{MAX_ID}"
_NUMERIC = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]     # as Docker puts them in the spec
    home: str = ""


def _atoi(text: str) -> int:
    """Go's Atoi with errors ignored (passwd files misbehave): 0 on failure."""
    return int(text) if _NUMERIC.match(text) else 0


def parse_passwd(text: str) -> list[PasswdEntry]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(":") + [""] * 7
        out.append(PasswdEntry(parts[0], _atoi(parts[2]), _atoi(parts[3]), parts[5]))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":") + [""] * 4
        members = tuple(parts[3].split(",")) if parts[3] else ()
        out.append(GroupEntry(parts[0], _atoi(parts[2]), members))
    return out


def _parse_numeric(val: str) -> tuple[int, bool]:
    """(id, is_numeric); raise on a numeric id out of range."""
    if not val or not _NUMERIC.match(val):
        return 0, False
    n = int(val)
    if n < MIN_ID or n > MAX_ID:
        raise InvalidParameter(_RANGE_ERR)
    return n, True


def resolve_user(user_spec: str, passwd_text: str | None,
                 group_text: str | None, group_add: list[str] | None = None) -> ResolvedUser:
    """`user[:group]` -> uid, gid and the spec's additionalGids.

    additionalGids is Docker's: the primary gid first, then the user's
    supplementary groups from /etc/group, then GroupAdd.
    """
    user_arg, _, group_arg = user_spec.partition(":")
    # Go's parseLine ignores anything after a second colon.
    group_arg = group_arg.split(":")[0]
    uid_arg, is_uid = _parse_numeric(user_arg)
    gid_arg, is_gid = _parse_numeric(group_arg)

    users = parse_passwd(passwd_text) if passwd_text is not None else []
    if user_arg == "":
        matches = [u for u in users if u.uid == 0]
    elif is_uid:
        matches = [u for u in users if u.uid == uid_arg]
    else:
        matches = [u for u in users if u.name == user_arg]

    uid, gid, home, matched_name = 0, 0, "", ""
    if matches:
        matched_name = matches[0].name
        uid, gid, home = matches[0].uid, matches[0].gid, matches[0].home
    elif user_arg:
        if not is_uid:
            raise InvalidParameter(
                f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        uid = uid_arg

    sgids: list[int] = []
    if group_arg or matched_name:
        groups = parse_group(group_text) if group_text is not None else []
        if group_arg:
            found = [g for g in groups if (g.gid == gid_arg if is_gid else g.name == group_arg)]
            if found:
                gid = found[0].gid
            elif not is_gid:
                raise InvalidParameter(
                    f"unable to find group {group_arg}: no matching entries in group file"
                )
            else:
                gid = gid_arg
        else:
            sgids = [g.gid for g in groups if matched_name in g.members]

    extra = additional_groups(group_add or [], group_text) if group_add else []
    # a group named twice (the user's own, a supplementary one, --group-add)
    # is listed once, as under Docker
    return ResolvedUser(uid, gid, tuple(dict.fromkeys((gid, *sgids, *extra))), home)


def additional_groups(names: list[str], group_text: str | None) -> list[int]:
    """GroupAdd entries (names or numbers) -> gids, deduplicated, in order."""
    groups = parse_group(group_text) if group_text is not None else []
    out: list[int] = []
    for name in names:
        num, is_num = _parse_numeric(name)
        found = [g for g in groups if (g.gid == num if is_num else g.name == name)]
        if found:
            gid = found[0].gid
            if gid < MIN_ID or gid > MAX_ID:
                raise InvalidParameter(_RANGE_ERR)
        elif is_num:
            gid = num
        else:
            # moby/sys/user's GetAdditionalGroups capitalises this one
            raise InvalidParameter(
                f"Unable to find group {name}: no matching entries in group file"
            )
        if gid not in out:
            out.append(gid)
    return out
