"""Event filters, the event bus, container names, record shapes."""

from __future__ import annotations

import asyncio
import time

import pytest

from dockyard.engine.containers.names import generate_name, validate_name
from dockyard.engine.containers.record import human_duration
from dockyard.engine.events import Event, EventBus, event_matches, validate_event_filters
from dockyard.errors import InvalidParameter


def ev(action: str = "start", type_: str = "container", **attrs: str) -> Event:
    return Event(type_, action, "abc123" + "0" * 58, {"name": "web", "image": "busybox",
                                                       **attrs})


def test_event_filters():
    assert event_matches(ev(), {"container": ["web"]})
    assert event_matches(ev(), {"container": ["abc123" + "0" * 58]})
    assert not event_matches(ev(), {"container": ["db"]})
    assert event_matches(ev("die"), {"event": ["die", "stop"]})
    assert not event_matches(ev("die"), {"event": ["start"]})
    assert event_matches(ev("health_status: healthy"), {"event": ["health_status"]})
    assert event_matches(ev("exec_create: sh -c true"), {"event": ["exec_create"]})
    assert event_matches(ev(team="a"), {"label": ["team=a"]})
    assert not event_matches(ev(team="a"), {"label": ["team=b"]})
    assert event_matches(ev(), {"type": ["container"]})
    assert not event_matches(ev(type_="image"), {"type": ["container"]})
    assert event_matches(ev(), {"image": ["busybox"]})
    with pytest.raises(InvalidParameter):
        validate_event_filters({"bogus": ["1"]})


def test_bus_history_and_until():
    async def main() -> list[str]:
        bus = EventBus()
        t0 = time.time_ns()
        bus.emit("container", "create", "a", {})
        bus.emit("container", "start", "a", {})
        out = []
        async for e in bus.stream(t0, time.time_ns(), {}):
            out.append(e.action)
        return out

    assert asyncio.run(main()) == ["create", "start"]


def test_names():
    assert validate_name("/web-1.a_b") == "web-1.a_b"
    with pytest.raises(InvalidParameter, match=r"Invalid container name \(-x\)"):
        validate_name("-x")
    with pytest.raises(InvalidParameter):
        validate_name("a")  # Docker needs at least two characters
    n = generate_name(set())
    assert "_" in n and validate_name(n) == n


def test_human_duration():
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(61) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"
