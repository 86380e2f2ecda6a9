"""Failures the lane finds in code whose fix belongs to work under way
elsewhere.  A known finding is not hidden: it is printed with every run and
written to the report, and its test shows as an expected failure (xfail)
instead of a failure.  A new failure in the same test still fails it.

Each entry: the operations, the kind of finding, a text its key or detail
contains, and where the fix belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.fuzz.findings import Finding


@dataclass(frozen=True)
class Known:
    ops: frozenset[str]
    kind: str
    text: str
    why: str


KNOWN = [
    # lstat of a path with a component longer than NAME_MAX: ENAMETOOLONG
    # becomes a 500 (dockerd 20.10 answers 500 too, with the host path in
    # the message); a 400 would say it is the request's fault
    Known(frozenset({"ContainerArchiveInfo", "ContainerArchive", "PutContainerArchive"}),
          "5xx", "File name too long",
          "container file paths (engine/fs)"),
    Known(frozenset({"ContainerArchiveInfo"}), "5xx", "curl --unix-socket $SOCK -X HEAD",
          "container file paths (engine/fs): the same lstat failure, seen through HEAD"),
    # an update body whose fields have the wrong JSON types is accepted
    # (BlkioDeviceReadBps[].Path an object); dockerd's decoder refuses it
    Known(frozenset({"ContainerUpdate"}), "negative_data_rejection", "in body",
          "type checks of the update body (engine/containers/operate.py)"),
    # an update whose PidsLimit is a float beyond int64 reaches the
    # runtime: `writing file pids.max: Invalid argument`, 500; dockerd's
    # decoder refuses the number with a 400
    Known(frozenset({"ContainerUpdate"}), "5xx", "Cannot update container",
          "int64 ranges and types of the update body (engine/containers/operate.py)"),
    # kill of a paused container waits 10 s and leaves it paused (dockerd
    # kills it at once); after more kills, updates and an unpause the record
    # can end "running" with no process, and rm -f, stop and kill then hang
    Known(frozenset({"-"}), "hung", "putting back fuzz-",
          "kill of a paused container (engine/containers/lifecycle.py)"),
    # the same frozen process seen by a forced removal: SIGKILL does not
    # end a paused container, so `rm -f` of one answers 500
    Known(frozenset({"ContainerDelete"}), "5xx", "did not exit after SIGKILL",
          "kill of a paused container (engine/containers/lifecycle.py)"),
    # `ps` refusing ps_args is reported as the daemon's failure, as dockerd
    # does (errdefs.System in daemon/top_unix.go); a 400 would be kinder
    Known(frozenset({"ContainerTop"}), "5xx", "ps: ",
          "top's validation of ps_args (engine/containers/operate.py)"),
]


def why(finding: Finding) -> str:
    for k in KNOWN:
        if finding.op_id in k.ops and finding.kind == k.kind and \
                (k.text in finding.key or k.text in finding.detail):
            return k.why
    return ""
