"""A container whose exit is being handled is not running, yet its last run
still holds host resources: waiting for its exit and starting it again wait
until the handler has released them."""

from __future__ import annotations

import asyncio

from dockyard.engine.containers.monitor import ExitMonitor
from dockyard.engine.containers.record import Container


def _container() -> Container:
    c = Container(id="c" * 64, name="/x", created=0, image_ref="busybox",
                  image_id="sha256:" + "0" * 64, config={}, host_config={})
    c.state.status = "running"
    return c


def test_exit_waiters_wait_for_the_release_not_the_status():
    async def main() -> list[str]:
        mon = ExitMonitor(logs=None)  # type: ignore[arg-type]  # no pumps used here
        c = _container()
        seen: list[str] = []

        async def handler() -> None:      # what the lifecycle's exit handler does
            mon.forget(c)
            c.state.status = "exited"
            await asyncio.sleep(0.05)      # releasing endpoints, mounts, bundle
            seen.append("released")
            mon.exited(c)

        async def stopper() -> None:
            assert await mon.wait_exit(c, 5)
            seen.append("stop returned")

        async def starter() -> None:
            await asyncio.sleep(0.01)      # comes in while the release runs
            await mon.settled(c)
            seen.append("start proceeds")

        task = asyncio.create_task(handler())
        await asyncio.sleep(0)
        await asyncio.gather(stopper(), starter(), task)
        # and once settled, nothing waits
        assert await asyncio.wait_for(mon.wait_exit(c, 5), 0.1)
        await asyncio.wait_for(mon.settled(c), 0.1)
        return seen

    seen = asyncio.run(main())
    assert seen[0] == "released"
    assert sorted(seen[1:]) == ["start proceeds", "stop returned"]
