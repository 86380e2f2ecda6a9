"""`DiskUsage`: `GET /system/df` (`docker system df [-v]`).

Sizes are moby's directory.Size: the bytes of every file, each inode once,
directories not counted.  Images: every image with the number of
containers made from it, its size and the part of it (`SharedSize`) in
layers other images hold too; `LayersSize` is every layer once.
Containers: all of them with `SizeRw` (their upper dir) and `SizeRootFs`.
Volumes: the local volumes without driver options (as dockerd: the data of
a tmpfs or bind volume is not on this disk) with UsageData (size and the
number of containers that reference it).  Build cache: the builder's
records of the intermediate images it keeps (engine/build/service.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from dockyard.backend import DiskUsageOptions, ListOptions
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.containers.views import ContainerViews, dir_size
from dockyard.engine.volumes.service import VolumeService
from dockyard.images import shapes
from dockyard.images.service import ImageService


class DiskUsage:
    def __init__(self, images: ImageService, containers: ContainerStore,
                 views: ContainerViews, volumes: VolumeService,
                 build_cache: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.images = images
        self.containers = containers
        self.views = views
        self.volumes = volumes
        self.build_cache = build_cache          # the builder's cache records

    async def report(self, opts: DiskUsageOptions) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if opts.images:
            out["LayersSize"], out["Images"] = self._images()
        if opts.containers:
            # the shapes on the loop (they read the store), the sizes in a thread
            items = self.views.list_containers(ListOptions(all=True))
            uppers = {c.id: (self.containers.upper_dir(c), c) for c in self.containers}
            await asyncio.to_thread(self._sizes, items, uppers)
            out["Containers"] = items
        if opts.volumes:
            out["Volumes"] = await self.volumes.usage()
        if opts.build_cache:
            out["BuildCache"] = self.build_cache() if self.build_cache is not None else []
        return out

    def _sizes(self, items: list[dict[str, Any]], uppers: dict[str, Any]) -> None:
        for item in items:
            upper, c = uppers.get(item["Id"], (None, None))
            if upper is None:
                continue
            rw = dir_size(upper)
            item["SizeRw"] = rw
            item["SizeRootFs"] = rw + self.views.image_size(c)

    def _images(self) -> tuple[int, list[dict[str, Any]]]:
        records = sorted(self.images.list_records(), key=lambda r: r.created, reverse=True)
        sizes = self.images.store.layer_sizes
        holders: Counter[str] = Counter()
        for rec in records:
            holders.update(set(rec.chain_ids))
        used = Counter(c.image_id for c in self.containers)
        items = []
        for rec in records:
            item = shapes.summary_shape(rec, used.get(rec.id, 0))
            item["SharedSize"] = sum(sizes.get(ch, 0) for ch in set(rec.chain_ids)
                                     if holders[ch] > 1)
            items.append(item)
        return sum(sizes.get(ch, 0) for ch in holders), items
