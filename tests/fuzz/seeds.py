"""Objects the lane keeps in place for the fuzzed operations to find.

Generated ids and names rarely name anything, so a fuzzed operation would
mostly meet 404s.  Before each test the lane puts back (through its own,
uncounted session) an image and a few containers in known states, named so
that the generator can use the names (settings.py binds them to `{id}` and
`{name}` path parameters, and stateful runs reach them through the links
from `GET /containers/json`):

  busybox:latest   the image the daemon makes at start
  fuzz-running     running a shell loop that exits on SIGTERM within a second
  fuzz-paused      the same, paused
  fuzz-exited      exited with status 3
  fuzz-created     created, never started
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

import requests

from tests.fuzz.findings import Finding
from tests.fuzz.transport import Timeout

if TYPE_CHECKING:
    from tests.fuzz.lane import Lane

IMAGE = "busybox:latest"
LOOP = ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1; done"]
CONTAINERS = {
    "fuzz-running": ("running", LOOP),
    "fuzz-paused": ("paused", LOOP),
    "fuzz-exited": ("exited", ["sh", "-c", "exit 3"]),
    "fuzz-created": ("created", LOOP),
}
IMAGE_NAMES = ["busybox", IMAGE]
CONTAINER_NAMES = sorted(CONTAINERS)


def keep(lane: Lane) -> None:
    lane.note_containers()
    keep_image(lane)
    for name, (state, cmd) in CONTAINERS.items():
        if name in lane.broken_seeds:
            continue
        try:
            keep_container(lane, name, state, cmd)
        except (requests.RequestException, Timeout) as e:
            # a container the daemon can no longer remove or start is a
            # finding; the lane goes on without that seed
            lane.broken_seeds.add(name)
            with contextlib.suppress(requests.RequestException, Timeout, ValueError, KeyError):
                lane.broken_ids.add(lane.own_call("GET", f"/containers/{name}/json",
                                                  seconds=5).json()["Id"])
            lane.record(Finding("-", f"seed {name}", "hung", f"putting back {name} failed",
                                None, f"{type(e).__name__}: {e}"))


def keep_image(lane: Lane) -> None:
    if not lane.busybox_tar:
        r = lane.own_call("GET", f"/images/{IMAGE}/get")
        r.raise_for_status()
        lane.busybox_tar = r.content
    elif lane.own_call("GET", f"/images/{IMAGE}/json").status_code == 404:
        lane.own_call("POST", "/images/load?quiet=1", data=lane.busybox_tar).raise_for_status()


def _state(lane: Lane, name: str) -> tuple[str, str] | None:
    r = lane.own_call("GET", f"/containers/{name}/json")
    if r.status_code == 404:
        return None
    r.raise_for_status()
    info = r.json()
    # a renamed seed keeps the name only when the rename gave it back
    if info.get("Name") != f"/{name}":
        return None
    cmd = info.get("Config", {}).get("Cmd")
    return info["State"]["Status"], json.dumps(cmd)


def keep_container(lane: Lane, name: str, state: str, cmd: list[str]) -> None:
    now = _state(lane, name)
    if now is not None and now == (state, json.dumps(cmd)):
        return
    if now is not None:
        lane.own_call("DELETE", f"/containers/{name}?force=1").raise_for_status()
    body = json.dumps({"Image": IMAGE, "Cmd": cmd}).encode()
    r = lane.own_call("POST", f"/containers/create?name={name}", data=body,
                      headers={"Content-Type": "application/json"})
    r.raise_for_status()
    if state == "created":
        return
    lane.own_call("POST", f"/containers/{name}/start").raise_for_status()
    if state == "exited":
        lane.own_call("POST", f"/containers/{name}/wait", seconds=30).raise_for_status()
    elif state == "paused":
        lane.own_call("POST", f"/containers/{name}/pause").raise_for_status()
