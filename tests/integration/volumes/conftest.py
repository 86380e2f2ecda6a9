"""Fixtures for the volume tests: unique volume names that are removed
afterwards, and an image with a VOLUME over files of every kind."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from volutil import APP_SETUP, LISTING, traces_of


@pytest.fixture
def vol(daemon) -> Iterator[Callable[[], str]]:  # type: ignore[no-untyped-def]
    """vol() -> a fresh volume name; what is left of them goes at the end."""
    names: list[str] = []

    def new() -> str:
        names.append(f"v-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield new
    for n in names:
        daemon.docker("volume", "rm", "-f", n)


@pytest.fixture(scope="session")
def app_image(daemon) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(tag, listing): busybox + files under /var/lib/app, VOLUME /var/lib/app;
    `listing` is LISTING's output in the container the image was made from."""
    tag = f"volapp-{uuid.uuid4().hex[:8]}:latest"
    name = f"mk-{uuid.uuid4().hex[:8]}"
    listing = daemon.out("run", "--name", name, "busybox", "sh", "-c",
                         f"{APP_SETUP} && {LISTING}")
    daemon.out("commit", "--change", "VOLUME /var/lib/app", name, tag)
    daemon.out("rm", name)
    cfg = json.loads(daemon.out("image", "inspect", tag))[0]["Config"]
    assert cfg["Volumes"] == {"/var/lib/app": {}}
    return tag, listing


@pytest.fixture
def failed_run(daemon):  # type: ignore[no-untyped-def]
    """`failed_run(*args, image=, cmd=)`: `docker run --rm` that must fail;
    the containers it made (`.last_ids`) must have left no trace."""

    def go(*args: str, image: str = "busybox", cmd: tuple[str, ...] = ("true",)
           ) -> tuple[int, str]:
        name = f"f-{uuid.uuid4().hex[:10]}"
        since = f"{time.time() - 0.001:.6f}"
        res = daemon.docker("run", "--rm", "--name", name, *args, image, *cmd, timeout=60)
        assert res.returncode != 0, f"expected failure, got: {res.stdout!r}"
        ids = set(daemon.out("events", "--since", since, "--until", f"{time.time():.6f}",
                             "--filter", f"container={name}",
                             "--format", "{{.Actor.ID}}").split())
        for cid in ids:
            assert traces_of(daemon, cid) == [], f"{args}: left behind"
        go.last_ids = ids  # type: ignore[attr-defined]
        return res.returncode, res.stderr.decode()

    return go
