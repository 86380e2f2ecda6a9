"""Docker's event stream: a bounded in-memory history plus live subscribers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter

EVENT_FILTER_KEYS = {
    "config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
    "scope", "secret", "service", "type", "volume",
}
_PREFIX_EVENTS = ("health_status", "exec_create", "exec_start")

log = logging.getLogger("dockyard.events")


@dataclass
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    time_nano: int = field(default_factory=time.time_ns)
    scope: str = "local"           # "swarm": a swarm-scoped object's (a cluster network)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Type": self.type, "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": self.attributes},
            "scope": self.scope, "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano,
        }
        # The legacy top-level fields that older clients read.
        if self.type == "container":
            d["status"] = self.action
            d["id"] = self.actor_id
            d["from"] = self.attributes.get("image", "")
        elif self.type == "image":
            d["status"] = self.action
            d["id"] = self.actor_id
        return d


def validate_event_filters(filters: dict[str, list[str]]) -> None:
    for k in filters:
        if k not in EVENT_FILTER_KEYS:
            raise InvalidParameter(f"invalid filter '{k}'")


def event_matches(ev: Event, filters: dict[str, list[str]]) -> bool:
    def any_of(key: str, values: list[str]) -> bool:
        return not values or any(v in values for v in _candidates(ev, key))

    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            if ev.type not in values:
                return False
        elif key == "event":
            ok = any(ev.action == v
                     or (ev.action.startswith(_PREFIX_EVENTS) and ev.action.startswith(v))
                     for v in values)
            if not ok:
                return False
        elif key == "label":
            for want in values:
                k, eq, v = want.partition("=")
                if k not in ev.attributes or (eq and ev.attributes[k] != v):
                    return False
        elif key == "image":
            img = ev.attributes.get("image", "")
            cands = {ev.actor_id, img, img.rsplit(":", 1)[0] if ":" in img.rsplit("/", 1)[-1]
                     else img, ev.attributes.get("name", "")} if ev.type in ("image", "container") \
                else set()
            if not any(v in cands or v.rsplit(":", 1)[0] in cands and ":" not in v
                       for v in values):
                return False
        elif key in ("container", "network", "volume", "plugin", "node", "service", "secret",
                     "config", "daemon"):
            type_for = {"container": "container", "network": "network", "volume": "volume",
                        "plugin": "plugin", "node": "node", "service": "service",
                        "secret": "secret", "config": "config", "daemon": "daemon"}[key]
            if ev.type != type_for:
                return False
            if not any_of(key, values):
                return False
        elif key == "scope" and ev.scope not in values:
            return False
    return True


def _candidates(ev: Event, key: str) -> list[str]:
    c = [ev.actor_id, ev.attributes.get("name", "")]
    if key == "container" and ev.actor_id:
        c.append(ev.actor_id[:12])
    return [x for x in c if x]


# Events a subscriber may have waiting (dockerd's buffer per subscriber):
# one that stops reading misses what comes after, instead of holding the
# daemon's memory without bound or slowing every other subscriber.
SUBSCRIBER_BACKLOG = 1024


class EventBus:
    """Keeps the last events for `since` queries and fans new ones out."""

    def __init__(self, history: int = 1000, backlog: int = SUBSCRIBER_BACKLOG) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._backlog = backlog
        self._behind: set[asyncio.Queue[Event]] = set()     # told once each

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def emit(self, type_: str, action: str, actor_id: str,
             attributes: dict[str, str] | None = None, scope: str = "local") -> Event:
        ev = Event(type_, action, actor_id, dict(attributes or {}), scope=scope)
        self._history.append(ev)
        for q in self._subscribers:
            try:
                q.put_nowait(ev)
            except asyncio.QueueFull:
                if q not in self._behind:
                    self._behind.add(q)
                    log.warning("an events subscriber is %d events behind: it misses "
                                "events from %s %s on", self._backlog, ev.type, ev.action)
        return ev

    async def stream(self, since_ns: int | None, until_ns: int | None,
                     filters: dict[str, list[str]]) -> AsyncIterator[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(self._backlog)
        self._subscribers.add(q)
        try:
            if since_ns is not None:
                for ev in list(self._history):
                    if ev.time_nano >= since_ns and (until_ns is None or ev.time_nano <= until_ns) \
                            and event_matches(ev, filters):
                        yield ev
            if until_ns is not None and until_ns <= time.time_ns():
                return
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = max(0.0, (until_ns - time.time_ns()) / 1e9)
                try:
                    ev = await asyncio.wait_for(q.get(), timeout)
                except TimeoutError:
                    return
                if until_ns is not None and ev.time_nano > until_ns:
                    return
                if event_matches(ev, filters):
                    yield ev
        finally:
            self._subscribers.discard(q)
            self._behind.discard(q)
