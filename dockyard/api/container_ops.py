"""container_ops routes."""

from __future__ import annotations

from dockyard.api.http import Router


def register(r: Router) -> None:
    pass
