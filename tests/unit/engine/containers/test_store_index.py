"""The container store's index: new ids never share their 12-character
short form with a container in the store, and the names in use are seen
live, reserved ones included."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from dockyard.engine.containers import store as store_mod
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.events import EventBus


def container(cid: str, name: str) -> Container:
    return Container(id=cid, name=name, created=0, image_ref="busybox", image_id="sha256:x",
                     config={}, host_config={})


@pytest.fixture
def store() -> ContainerStore:
    return ContainerStore(Path("/nonexistent"), Path("/nonexistent"), EventBus())


def test_a_new_id_never_shares_a_short_id_in_use(store, monkeypatch):
    taken = "a" * 12 + "0" * 52
    store.add(container(taken, "first"))
    # the random source offers the taken short id (with another tail) first
    offers = iter(["a" * 12 + "1" * 52, "a" * 12 + "2" * 52, "b" * 64])
    monkeypatch.setattr(store_mod.secrets, "token_hex", lambda n: next(offers))
    assert store.new_id() == "b" * 64


def test_a_removed_containers_short_id_is_free_again(store, monkeypatch):
    c = container("c" * 64, "gone")
    store.add(c)
    store.discard(c)
    monkeypatch.setattr(store_mod.secrets, "token_hex", lambda n: "c" * 12 + "9" * 52)
    assert store.new_id() == "c" * 12 + "9" * 52


def test_names_taken_is_live_and_counts_reservations(store):
    names = store.names_taken()
    store.add(container("d" * 64, "web"))
    store.reserve_name("db", "e" * 64)
    assert {"web", "db"} <= names
    store.release_name("db", "e" * 64)
    assert "db" not in names and "web" in names


def test_many_ids_are_all_distinct_in_their_short_form(store):
    for i in itertools.islice(itertools.count(), 2000):
        cid = store.new_id()
        store.add(container(cid, f"c{i}"))
    assert len({c.id[:12] for c in store}) == 2000
