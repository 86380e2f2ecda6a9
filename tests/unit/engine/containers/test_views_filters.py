"""`docker ps --filter name=...`: dockerd's filters.Match."""

from __future__ import annotations

import pytest

from dockyard.engine.containers.views import name_matches


@pytest.mark.parametrize(("pattern", "name", "want"), [
    ("web", "web", True),
    ("/web", "web", True),
    ("^/we", "web", True),
    ("^we", "web", True),
    ("b$", "web", True),
    ("db", "web", False),
    # not a regular expression: only an exact match counts, nothing fails
    ("[", "web", False),
    ("[", "[", True),
    ("(", "web", False),
    ("a{99999999999}", "web", False),
])
def test_name_filter(pattern, name, want):
    assert name_matches(pattern, name) is want
