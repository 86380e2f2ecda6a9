"""The layering contract (docs/architecture.md, "Rules kept so far"), checked
on the real `dockyard/` tree, and the checker itself checked on copies of the
tree with a violation added and on small synthetic trees."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import layering
import pytest
from layering import (
    check_all,
    check_api,
    check_lower_layers,
    check_module_length,
    check_no_cycles,
    check_package_docstrings,
    check_pure,
    find_cycles,
    load_tree,
    report,
)

DOCKYARD = Path(__file__).resolve().parents[2] / "dockyard"


@pytest.fixture(scope="module")
def real_tree() -> layering.Tree:
    return load_tree(DOCKYARD)


# the contract, on the real tree


def assert_clean(violations: list[str]) -> None:
    if violations:
        pytest.fail(f"{len(violations)} violation(s):\n{report(violations)}", pytrace=False)


def test_oci_is_pure(real_tree):
    assert_clean(check_pure(real_tree, "oci"))


def test_backend_is_pure(real_tree):
    assert_clean(check_pure(real_tree, "backend"))


def test_lower_layers_never_import_engine_api_or_backend(real_tree):
    assert_clean(check_lower_layers(real_tree))


def test_api_imports_only_backend_errors_and_itself(real_tree):
    assert_clean(check_api(real_tree))


def test_no_import_cycles(real_tree):
    assert_clean(check_no_cycles(real_tree))


def test_no_module_past_600_lines(real_tree):
    assert_clean(check_module_length(real_tree))


def test_every_package_says_what_it_owns(real_tree):
    assert_clean(check_package_docstrings(real_tree))


# the checker, on a copy of the real tree with one violation added


@pytest.fixture
def tree_copy(tmp_path) -> Path:
    dest = tmp_path / "dockyard"
    shutil.copytree(DOCKYARD, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def append_line(path: Path, line: str) -> int:
    """Append `line` to the module at `path`; returns its line number."""
    text = path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + line + "\n")
    return len(text.splitlines()) + 1


def added(before: list[str], after: list[str]) -> list[str]:
    """What a change added; a copy's messages name files as the real tree's do."""
    return [v for v in after if v not in before]


def test_api_rule_names_an_api_file_importing_the_engine(real_tree, tree_copy):
    before = check_api(real_tree)
    line = append_line(tree_copy / "api" / "routes" / "system.py",
                       "from dockyard.engine import lifecycle")
    new = added(before, check_api(load_tree(tree_copy)))
    assert len(new) == 1, report(new)
    assert new[0].startswith(
        f"dockyard/api/routes/system.py:{line}: `from dockyard.engine import lifecycle`")
    assert "may not import dockyard.engine" in new[0]


def test_purity_rule_names_an_oci_file_importing_os(real_tree, tree_copy):
    before = check_pure(real_tree, "oci")
    line = append_line(tree_copy / "oci" / "modes.py", "import os")
    new = added(before, check_pure(load_tree(tree_copy), "oci"))
    assert len(new) == 1, report(new)
    assert new[0].startswith(f"dockyard/oci/modes.py:{line}: `import os`")


def test_cycle_rule_finds_a_two_module_cycle(real_tree, tree_copy):
    before = check_no_cycles(real_tree)
    (tree_copy / "util" / "ping.py").write_text("from dockyard.util import pong\n")
    (tree_copy / "util" / "pong.py").write_text(
        "def later():\n    import dockyard.util.ping\n")
    tree = load_tree(tree_copy)
    new = added(before, check_no_cycles(tree))
    assert len(new) == 1, report(new)
    assert new[0].startswith("import cycle dockyard.util.ping -> dockyard.util.pong -> "
                             "dockyard.util.ping:")
    assert "dockyard/util/ping.py:1: `from dockyard.util import pong` (module level)" in new[0]
    assert "dockyard/util/pong.py:2: `import dockyard.util.ping` (in function later)" in new[0]


# the checker, on synthetic trees


def write_tree(base: Path, files: dict[str, str]) -> Path:
    """Write `files` ({path under the package: source}) as package `dockyard`."""
    root = base / "dockyard"
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text(f'"""The {directory.name} package."""\n')
    return root


CLEAN = {
    "__init__.py": '"""The package."""\nAPI_VERSION = "1.51"\n',
    "errors.py": "class InvalidParameter(Exception):\n    pass\n",
    "oci/spec.py": """\
        from __future__ import annotations

        import posixpath
        import re
        from collections.abc import Mapping
        from dataclasses import dataclass

        from dockyard.errors import InvalidParameter
        from . import sizes
        from .sizes import parse_size

        def build(m: Mapping) -> str:
            return posixpath.normpath(re.sub("a", "b", str(m)))
        """,
    "oci/sizes.py": "from dockyard.errors import InvalidParameter\n",
    "backend/__init__.py": "\"\"\"The seam.\"\"\"\nfrom dockyard.backend.containers import ContainerBackend\n",
    "backend/containers.py": "from typing import Protocol\n\n\nclass ContainerBackend(Protocol):\n"
                             "    pass\n",
    "api/app.py": """\
        import asyncio
        import importlib

        from dockyard import API_VERSION
        from dockyard.backend import ContainerBackend
        from dockyard.errors import InvalidParameter
        from . import routes

        def load():
            importlib.import_module("dockyard.api.routes")
        """,
    "api/routes.py": "import json\n",
    "engine/engine.py": """\
        from typing import TYPE_CHECKING

        from dockyard.backend import ContainerBackend
        from dockyard.oci import spec
        from dockyard.runtime.run import run

        if TYPE_CHECKING:
            from dockyard.engine.store import Store
        """,
    "engine/store.py": "import os\n",
    "runtime/run.py": "import subprocess\n\nfrom dockyard.oci.spec import build\n",
}


def test_clean_synthetic_tree_passes(tmp_path):
    results = check_all(load_tree(write_tree(tmp_path, CLEAN)))
    assert results == {name: [] for name in results}


def targets(tree: layering.Tree, importer: str) -> set[str]:
    return {i.target for i in tree.imports if i.importer == importer}


def test_imports_are_resolved(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN,
        "oci/__init__.py": "from . import spec\nfrom .spec import build\nDEFAULT = 1\n",
        "oci/modes.py": "from dockyard.oci import DEFAULT, sizes\nfrom .. import errors\n",
        "oci/deep/inner.py": "from ..sizes import x\nfrom ... import errors\n",
    }))
    assert targets(tree, "dockyard.oci") == {"dockyard.oci.spec"}
    # `from pkg import name`: pkg.name when that is a module, else pkg
    assert targets(tree, "dockyard.oci.modes") == {
        "dockyard.oci", "dockyard.oci.sizes", "dockyard.errors"}
    assert targets(tree, "dockyard.oci.deep.inner") == {"dockyard.oci.sizes", "dockyard.errors"}
    assert targets(tree, "dockyard.oci.spec") >= {
        "__future__", "posixpath", "re", "collections.abc", "dataclasses",
        "dockyard.errors", "dockyard.oci.sizes"}
    # a literal importlib.import_module counts
    assert "dockyard.api.routes" in targets(tree, "dockyard.api.app")
    where = {i.target: i.where for i in tree.imports if i.importer == "dockyard.engine.engine"}
    assert where["dockyard.engine.store"] == "under TYPE_CHECKING"
    assert where["dockyard.oci.spec"] == "module level"


@pytest.mark.parametrize("line", [
    "import os",
    "import os.path",
    "from os import path",
    "import pathlib",
    "import subprocess",
    "import socket",
    "import asyncio",
    "import shutil",
    "import io",
    "import tempfile",
    "import ctypes",
    "import fcntl",
    "import yaml",
    "import dockyard",
    "from dockyard import API_VERSION",
    "from dockyard.runtime import run",
    "from posixpath import exists",
    "from posixpath import *",
])
def test_purity_rule_refuses(tmp_path, line):
    tree = load_tree(write_tree(tmp_path, {**CLEAN, "oci/bad.py": f"def f():\n    {line}\n"}))
    violations = check_pure(tree, "oci")
    assert len(violations) == 1, report(violations)
    assert violations[0].startswith(f"dockyard/oci/bad.py:2: `{line}` (in function f)")


def test_purity_rule_allows_only_the_io_free_names_of_posixpath(tmp_path):
    tree = load_tree(write_tree(tmp_path, {**CLEAN, "oci/bad.py": """\
        import posixpath as pp

        def f(p):
            return pp.join(pp.normpath(p), "x") if pp.exists(p) else pp.realpath(p)
        """}))
    violations = check_pure(tree, "oci")
    assert len(violations) == 2, report(violations)
    assert "posixpath.exists" in violations[0] and "posixpath.realpath" in violations[1]
    assert violations[0].startswith("dockyard/oci/bad.py:4: `pp.exists`")


def test_backend_is_held_to_the_same_purity(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN, "backend/streams.py": "import asyncio\nfrom dockyard.engine import engine\n"}))
    violations = check_pure(tree, "backend")
    assert [v.split(":")[:2] for v in violations] == [
        ["dockyard/backend/streams.py", "1"], ["dockyard/backend/streams.py", "2"]]


def test_lower_layer_rule_applies_to_packages_that_arrive_later(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN,
        "build/plan.py": "from dockyard.backend import ContainerBackend\n",
        "runtime/late.py": "def f():\n    import dockyard.engine.engine\n",
        "cgroups/x.py": "from dockyard import api\n",
    }))
    violations = check_lower_layers(tree)
    assert len(violations) == 3, report(violations)
    assert violations[0].startswith("dockyard/runtime/late.py:2:")
    assert "must not import dockyard.engine" in violations[0]
    assert violations[1].startswith("dockyard/cgroups/x.py:1:")
    assert violations[2].startswith("dockyard/build/plan.py:1:")


def test_api_rule_refuses_everything_below_the_backend(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN,
        "api/bad.py": "from dockyard.images import reference\nimport dockyard.util\n"
                      "from dockyard import oci\n",
    }))
    violations = check_api(tree)
    assert [v.split(": ")[0] for v in violations] == [
        "dockyard/api/bad.py:1", "dockyard/api/bad.py:2", "dockyard/api/bad.py:3"]


def test_cycle_hidden_under_type_checking_is_found(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN,
        "engine/store.py": """\
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from dockyard.engine.engine import Engine
            """,
    }))
    cycles = find_cycles(tree)
    assert [c.modules for c in cycles] == [("dockyard.engine.engine", "dockyard.engine.store")]
    assert [i.where for i in cycles[0].closing] == ["under TYPE_CHECKING"] * 2


def test_each_cycle_of_a_tangle_is_named_once(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        "a.py": "from dockyard import b\n",
        "b.py": "from dockyard import c\nfrom dockyard import a\n",
        "c.py": "from dockyard import a\n",
        "d.py": "from dockyard import d\n",     # importing itself is no cycle
    }))
    cycles = {c.modules for c in find_cycles(tree)}
    assert cycles == {("dockyard.a", "dockyard.b"),
                      ("dockyard.a", "dockyard.b", "dockyard.c")}


def test_module_length_rule(tmp_path):
    tree = load_tree(write_tree(tmp_path, {
        **CLEAN, "engine/long.py": "x = 1\n" * 601, "engine/fits.py": "x = 1\n" * 600}))
    assert check_module_length(tree) == [
        "dockyard/engine/long.py:601: 601 lines, past the 600-line limit; split the module"]


def test_package_docstring_rule(tmp_path):
    root = write_tree(tmp_path, {**CLEAN, "engine/logs/pump.py": "x = 1\n"})
    assert check_package_docstrings(load_tree(root)) == []
    (root / "engine" / "logs" / "__init__.py").write_text("# no docstring\n")
    (root / "engine" / "fs").mkdir()
    (root / "engine" / "fs" / "tar.py").write_text("x = 1\n")
    assert check_package_docstrings(load_tree(root)) == [
        "dockyard/engine/fs/: no __init__.py; a package says what it owns in its docstring",
        "dockyard/engine/logs/__init__.py:1: no docstring saying what the package owns"]
