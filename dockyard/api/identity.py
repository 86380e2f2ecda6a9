"""The headers the daemon sends with every answer (as dockerd's middleware),
hijacked stream heads included."""

from __future__ import annotations

from dockyard import API_VERSION, __version__

DEFAULT_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"dockyard/{__version__} (linux)",
}
