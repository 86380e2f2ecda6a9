"""ADD's remote sources: `ADD https://host/file /dest`.

Fetched as dockerd's classic builder fetches them: every build downloads
the file again (its checksum is the cache key), the name comes from the
URL's path or else the Content-Disposition header, the file is never
unpacked, its mode is 0600 and its time the Last-Modified header's.  The
download goes into the build's own directory and is removed with it.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import posixpath
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.build import context as ctx
from dockyard.errors import InvalidParameter
from dockyard.images.distribution.proxies import Proxies

CHUNK = 1 << 20
TIMEOUT = 60
UNNAMED = "__unnamed__"


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _filename(url: str, disposition: str) -> str:
    path = urllib.parse.urlsplit(url).path
    if path and not path.endswith("/"):
        base = posixpath.basename(path)
        if base:
            return base
    if disposition:
        for part in disposition.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "filename":
                value = value.strip().strip('"')
                if value and not value.endswith("/"):
                    return posixpath.basename(value)
    return ""


def _download(url: str, target_dir: Path) -> tuple[Path, str, int, str]:
    """(file, name, mtime, sha256 hex) of the body of a GET of `url`."""
    req = urllib.request.Request(url, headers={"User-Agent": "dockyard-builder"})
    # the environment's proxies with Go's rules, as dockerd's fetch (never
    # for a loopback address), not urllib's own reading of them
    proxy = Proxies.from_config({}, os.environ).for_url(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(
        {"http": proxy, "https": proxy} if proxy else {}))
    try:
        resp = opener.open(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        body = e.read(512).decode("utf-8", "replace")
        raise InvalidParameter(f"failed to GET {url} with status {e.code} {e.reason}: "
                               f"{body}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise InvalidParameter(f"error fetching {url}: {reason}") from None
    with resp:
        name = _filename(url, resp.headers.get("Content-Disposition", ""))
        target = target_dir / (name or UNNAMED)
        h = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := resp.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        mtime = 0
        modified = resp.headers.get("Last-Modified")
        if modified:
            try:
                parsed = email.utils.parsedate_to_datetime(modified)
                mtime = int(parsed.timestamp())
            except (TypeError, ValueError):
                mtime = 0
    return target, name, mtime, h.hexdigest()


async def fetch_url(url: str, dest: str, workdir: Path, emit: Callable[[dict[str, Any]], None]
                    ) -> ctx.Source:
    where = workdir / f"url-{secrets.token_hex(6)}"
    where.mkdir(mode=0o700)
    target, name, mtime, digest = await asyncio.to_thread(_download, url, where)
    emit({"stream": "\n"})
    if not name and dest.endswith("/"):
        raise InvalidParameter(f"ADD failed: cannot determine filename for source {url}")
    size = target.stat().st_size
    entry = ctx.Entry(name or UNNAMED, ctx.FILE, 0o600, size=size, mtime=mtime,
                      ref=str(target), digest=digest)
    return ctx.Source(name or UNNAMED, entry,
                      "file:" + ctx.entry_hash(entry, name or UNNAMED, lambda e: e.digest))
