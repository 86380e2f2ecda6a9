"""The build package's pure half does no I/O: only the standard library's
I/O-free modules, the Dockerfile parser, dockyard.errors and dockyard.oci."""

from __future__ import annotations

from pathlib import Path

from layering import in_package, is_pure_stdlib, load_tree

DOCKYARD = Path(__file__).resolve().parents[3] / "dockyard"
ALLOWED = ("dockyard.build", "dockyard.errors", "dockyard.oci", "dockerfile")


def test_build_pure_half_imports_nothing_that_does_io():
    tree = load_tree(DOCKYARD)
    bad = []
    for imp in tree.imports:
        if not in_package(imp.importer, "dockyard.build"):
            continue
        if in_package(imp.importer, "dockyard.build.driver"):
            continue
        if any(in_package(imp.target, a) for a in ALLOWED):
            if in_package(imp.target, "dockyard.build.driver"):
                bad.append(imp.describe())
            continue
        if not tree.internal(imp.target) and is_pure_stdlib(imp.target):
            continue
        bad.append(imp.describe())
    assert bad == []
