"""What many `docker events` subscribers saw while clients ran containers:
every subscriber must have seen each container's events exactly once, in
the same order.  Shared by the events load test and `bench/load_bench.py`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# A container run with `docker run --rm` always makes these, in this order;
# an engine may add others (attach, network connect and disconnect).
LIFECYCLE = ("create", "start", "die", "destroy")


def read_stream(path: Path) -> list[dict]:
    """The JSON documents `docker events --format '{{json .}}'` wrote."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def container_of(ev: dict) -> str:
    """The container an event is about: its actor, or for a network
    connect or disconnect the container attribute."""
    actor = ev.get("Actor") or {}
    if ev.get("Type") == "container":
        return str(actor.get("ID", ""))
    if ev.get("Type") == "network":
        return str((actor.get("Attributes") or {}).get("container", ""))
    return ""


def label(ev: dict) -> str:
    return f"{ev.get('Type')} {ev.get('Action')}"


def sequences(stream: list[dict], ids: set[str]) -> dict[str, list[str]]:
    """Per container of `ids`, the events one subscriber saw, in order."""
    out: dict[str, list[str]] = {cid: [] for cid in ids}
    for ev in stream:
        cid = container_of(ev)
        if cid in out:
            out[cid].append(label(ev))
    return out


@dataclass
class Verdict:
    canonical: list[str]               # the sequence most containers got
    subscribers: int = 0
    containers: int = 0
    lost: int = 0                       # events of the canonical sequence not seen
    duplicated: int = 0                 # events seen more often than once
    misordered: int = 0                 # right events, wrong order
    disagreeing: int = 0                # subscribers whose whole stream differs from the first
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # subscribers may see different containers' events interleaved
        # differently (dockerd's do): `disagreeing` is reported, not judged
        return not (self.lost or self.duplicated or self.misordered or self.problems)


def judge(streams: list[list[dict]], ids: set[str]) -> Verdict:
    """Check every subscriber's stream against the containers in `ids`."""
    per_sub = [sequences(s, ids) for s in streams]
    shapes = Counter(tuple(seq) for seqs in per_sub for seq in seqs.values())
    canonical = list(shapes.most_common(1)[0][0]) if shapes else []
    v = Verdict(canonical, len(streams), len(ids))
    actions = [x.split(" ", 1)[1] for x in canonical if x.startswith("container ")]
    if [a for a in actions if a in LIFECYCLE] != list(LIFECYCLE):
        v.problems.append(f"the usual sequence {canonical} lacks {LIFECYCLE} in order")
    want = Counter(canonical)
    for n, seqs in enumerate(per_sub):
        for cid, seq in seqs.items():
            got = Counter(seq)
            lost = sum((want - got).values())
            dup = sum(c - 1 for c in got.values() if c > 1)
            v.lost += lost
            v.duplicated += dup
            if not lost and not dup and seq != canonical:
                v.misordered += 1
            if (lost or dup or seq != canonical) and len(v.problems) < 10:
                v.problems.append(f"subscriber {n}, container {cid[:12]}: {seq}")
    ours = [[(container_of(e), label(e)) for e in s if container_of(e) in ids] for s in streams]
    v.disagreeing = sum(1 for o in ours[1:] if o != ours[0])
    return v
