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


def test_every_subscriber_gets_every_event_once_in_order():
    async def main() -> list[list[str]]:
        bus = EventBus()
        got: list[list[str]] = [[] for _ in range(50)]

        async def subscriber(n: int) -> None:
            async for e in bus.stream(None, None, {}):
                got[n].append(e.actor_id)
                if e.action == "destroy" and e.actor_id == "c299":
                    return

        tasks = [asyncio.create_task(subscriber(n)) for n in range(50)]
        await asyncio.sleep(0)
        assert bus.listeners == 50
        for i in range(300):
            bus.emit("container", "destroy", f"c{i}", {})
            if i % 7 == 0:
                await asyncio.sleep(0)      # subscribers run between some emits
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert bus.listeners == 0
        return got

    want = [f"c{i}" for i in range(300)]
    assert all(g == want for g in asyncio.run(main()))


def test_a_subscriber_that_stops_reading_holds_a_bounded_backlog():
    async def main() -> tuple[list[str], list[str]]:
        bus = EventBus(backlog=10)
        stuck = bus.stream(None, None, {})
        first = await _next_after(stuck, lambda: bus.emit("container", "start", "e0", {}))
        reader: list[str] = []

        async def read() -> None:
            async for e in bus.stream(None, None, {}):
                reader.append(e.actor_id)
                if e.actor_id == "e100":
                    return

        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        for i in range(1, 101):
            bus.emit("container", "start", f"e{i}", {})   # never blocks
            await asyncio.sleep(0)
        await asyncio.wait_for(task, 5)
        rest = [first]
        for _ in range(10):
            rest.append((await stuck.__anext__()).actor_id)
        await stuck.aclose()
        return reader, rest

    reader, stuck = asyncio.run(main())
    assert reader == [f"e{i}" for i in range(1, 101)]
    # the stuck subscriber kept the first events it had room for, not all 100
    assert stuck == [f"e{i}" for i in range(11)]


async def _next_after(stream, emit) -> str:  # type: ignore[no-untyped-def]
    nxt = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    emit()
    return (await nxt).actor_id


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
