"""`LogService`: the log pumps of running containers, and reading logs.

A pump exists from a container's start until its runtime is released; the
exit monitor keeps it pumping while the container runs and gives it a
final pass at exit.  Readers (`docker logs -f`) share the same pump, so
what they see is always converted first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from dockyard.backend import LogsOptions, LogStream
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.logs.files import json_log_files
from dockyard.engine.logs.format import (
    JsonFileOptions,
    log_attrs,
    parse_json_file_opts,
    parse_since,
    parse_until,
)
from dockyard.engine.logs.pump import POLL_INTERVAL, LogPump
from dockyard.engine.logs.reader import read_log_batches
from dockyard.errors import InvalidParameter, NotImplementedByEngine

log = logging.getLogger(__name__)

SUPPORTED_LOG_DRIVERS = ("json-file", "none")
FAILED_PUMP_RETRY = 1.0  # seconds


def log_driver(host_config: dict[str, Any]) -> str:
    return (host_config.get("LogConfig") or {}).get("Type") or "json-file"


def check_log_config(host_config: dict[str, Any]) -> JsonFileOptions | None:
    """Only the drivers dockyard implements; others are refused, not ignored.
    Returns the json-file options (None for driver none)."""
    lc = host_config.get("LogConfig") or {}
    driver = log_driver(host_config)
    if driver not in SUPPORTED_LOG_DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    if driver == "json-file":
        return parse_json_file_opts(lc.get("Config") or {})
    if lc.get("Config"):
        key = next(iter(lc["Config"]))
        raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")
    return None


def parse_tail(raw: str) -> int | None:
    """`tail`: a count, or everything for "all", anything unparsable or < 0."""
    if raw in ("", "all"):
        return None
    try:
        tail = int(raw)
    except ValueError:
        return None
    return tail if tail >= 0 else None


def record_attrs(c: Container) -> dict[str, str]:
    """What the `labels`, `env`, their `-regex` forms and `tag` log options
    put in every record of this container's log."""
    image_id = c.image_id.removeprefix("sha256:")
    fields = {"ID": c.id[:12], "FullID": c.id, "Name": c.name, "ImageID": image_id[:12],
              "ImageFullID": c.image_id, "ImageName": str(c.config.get("Image") or ""),
              "DaemonName": "docker"}
    opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
    return log_attrs(opts, c.config.get("Labels") or {}, c.config.get("Env") or [], fields)


class LogService:
    def __init__(self, store: ContainerStore) -> None:
        self.store = store
        self._pumps: dict[str, LogPump] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ pumps
    def start_pump(self, c: Container) -> LogPump | None:
        """The pump of a container about to run (or being restored)."""
        opts = check_log_config(c.host_config)
        if opts is None:
            return None
        pump = LogPump(self.store.log_spool_path(c), self.store.log_path(c), opts.max_size,
                       opts.max_file, fifo=self.store.conmon_log_path(c),
                       attrs=record_attrs(c))
        self._close_later(self._pumps.pop(c.id, None))
        self._pumps[c.id] = pump
        return pump

    def pump(self, c: Container) -> LogPump | None:
        return self._pumps.get(c.id)

    def drop_pump(self, c: Container) -> None:
        self._close_later(self._pumps.pop(c.id, None))

    def _close_later(self, pump: LogPump | None) -> None:
        # final_pump closes a pump; one dropped without it is closed here
        if pump is not None and not pump.closed:
            task = asyncio.create_task(pump.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def keep_pumping(self, c: Container) -> None:
        """Convert new output as conmon writes it, until cancelled."""
        pump = self._pumps.get(c.id)
        if pump is None:
            return
        while True:
            try:
                await pump.pump_once()
            except Exception:
                # (a full disk, say): the container waits meanwhile
                log.exception("log pump failed for container %s", c.id[:12])
                await asyncio.sleep(FAILED_PUMP_RETRY)
                continue
            if not pump.has_more:
                await pump.wait_output(POLL_INTERVAL)

    async def final_pump(self, c: Container) -> None:
        """The container has exited: convert the rest, open line included,
        then close the pump (its files are let go; readers still holding it
        get nothing more from it)."""
        pump = self._pumps.get(c.id)
        if pump is None:
            return
        try:
            await pump.pump_once(final=True)
        except Exception:
            log.exception("final log pump failed for container %s", c.id[:12])
        await pump.aclose()

    async def flush_all(self) -> None:
        """Daemon shutdown: bring every json log up to date."""
        for pump in list(self._pumps.values()):
            with contextlib.suppress(Exception):
                await pump.pump_once()

    # ------------------------------------------------------------ reading
    def read(self, c: Container, *, stdout: bool, stderr: bool, since_ns: int | None = None,
             until_ns: int | None = None, tail: int | None = None, timestamps: bool = False,
             follow: bool = False, details: bool = False
             ) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        """Records in batches (see read_log_batches)."""
        opts = parse_json_file_opts((c.host_config.get("LogConfig") or {}).get("Config"))
        current = self.store.log_path(c)
        # the rotated files there are, then the current one even before it
        # exists: a follower waits for it
        files = [p for p in json_log_files(current, opts.max_file) if p != current]
        return read_log_batches(
            [*files, current], stdout=stdout, stderr=stderr, since_ns=since_ns,
            until_ns=until_ns, tail=tail, timestamps=timestamps, follow=follow,
            details=details, is_running=lambda: c.state.running or c.state.status == "restarting",
            pump=self._pumps.get(c.id))

    async def replay(self, c: Container) -> AsyncIterator[tuple[int, bytes]]:
        """Everything logged so far (`attach?logs=1`), record by record."""
        async with contextlib.aclosing(self.read(c, stdout=True, stderr=True)) as batches:
            async for batch in batches:
                for record in batch:
                    yield record

    def logs(self, ref: str, opts: LogsOptions) -> LogStream:
        """`GET /containers/{id}/logs`."""
        c = self.store.get(ref)
        if not (opts.stdout or opts.stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        if log_driver(c.host_config) == "none":
            raise NotImplementedByEngine("configured logging driver does not support reading")
        batches = self.read(c, stdout=opts.stdout, stderr=opts.stderr,
                            since_ns=parse_since(opts.since) or None,
                            until_ns=parse_until(opts.until), tail=parse_tail(opts.tail),
                            timestamps=opts.timestamps, follow=opts.follow,
                            details=opts.details)
        return LogStream(tty=bool(c.config.get("Tty")), batches=batches)
