"""Shared helpers: captured fixture files and fake cgroup trees in tmp dirs."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def load_dir(path: Path) -> dict[str, str]:
    """A fixture directory as {file name: text}, the builders' input."""
    return {p.name: p.read_text() for p in sorted(path.iterdir()) if p.is_file()}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    """Create `files` ({relative path: text}) under root; dirs end with "/"."""
    for rel, text in files.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root
