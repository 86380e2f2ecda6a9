"""Events carry their scope: local, or swarm for a swarm network's
creation and removal; the `scope` filter selects on it."""

from __future__ import annotations

from dockyard.engine.events import EventBus, event_matches


def test_scope_is_shown_and_filtered():
    bus = EventBus()
    local = bus.emit("network", "create", "a" * 64, {"name": "n"})
    swarm = bus.emit("network", "create", "b" * 25, {"name": "ov"}, scope="swarm")
    assert local.to_json()["scope"] == "local"
    assert swarm.to_json()["scope"] == "swarm"
    assert event_matches(local, {"scope": ["local"]})
    assert not event_matches(local, {"scope": ["swarm"]})
    assert event_matches(swarm, {"scope": ["swarm"]})
    assert not event_matches(swarm, {"scope": ["local"]})
    assert event_matches(swarm, {"scope": ["local", "swarm"]})
