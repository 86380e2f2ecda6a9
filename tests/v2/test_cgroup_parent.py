"""`--cgroup-parent` on a pure v2 host: the container's group is
<parent>/<id> in the one tree, confined to the root; limits, stats, top and
update act on it there, and removal takes the group away."""

from __future__ import annotations

import os
import uuid

import pytest
from v2util import CGROUP_ROOT, MB, api, host_cgroup_dir, read_host, run_detached

pytestmark = [pytest.mark.needs("stats"), pytest.mark.needs("update")]


@pytest.mark.parametrize("form", ["/{p}/sub", "../../{p}"])
def test_cgroup_parent_on_v2(docker, name, form):
    top = f"v2-parent-{uuid.uuid4().hex[:8]}"
    try:
        run_detached(docker, name, "--cgroup-parent", form.format(p=top), "-m", "64m",
                     "--memory-swap", "64m")
        cid = docker.inspect(name)["Id"]
        d = host_cgroup_dir(docker, name)
        parent = os.path.normpath("/" + form.format(p=top))    # `..` stays under the root
        assert d == CGROUP_ROOT / parent.lstrip("/") / cid
        assert read_host(d, "memory.max") == str(64 * MB)
        status, body = api("GET", f"/containers/{name}/stats?stream=false")
        assert status == 200 and body["memory_stats"]["limit"] == 64 * MB, body
        status, body = api("GET", f"/containers/{name}/top")
        assert status == 200 and len(body["Processes"]) == 1, body
        docker.out("update", "--memory", "96m", "--memory-swap", "96m", name)
        assert read_host(d, "memory.max") == str(96 * MB)
        docker.remove(name)
        assert not d.exists()
    finally:
        docker.remove(name)
        for sub in (CGROUP_ROOT / top / "sub", CGROUP_ROOT / top):
            try:
                sub.rmdir()
            except OSError:
                pass
