"""The layering contract of the `dockyard` package, checked from source.

`load_tree` parses every `.py` file under a package directory (the real
`dockyard/` or a copy in a temporary directory) and collects every import in
it: at module level, inside functions and classes, under `if TYPE_CHECKING:`
and in `try` blocks, because an import cycle hidden in any of those is still
a cycle.  Relative imports are resolved against the importing module, and
`from pkg import name` counts as an import of `pkg.name` when that is a
module of the tree, else of `pkg`.  `importlib.import_module("a.b")` with a
literal name counts too; a computed name cannot be seen from source.

The `check_*` functions take a `Tree` and return one message per violation,
each naming the file, the line and the import statement.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Standard-library modules that do no I/O, the only outside imports allowed
# in the pure packages.  A submodule of a listed module is allowed too.
PURE_STDLIB = frozenset({
    "__future__", "abc", "base64", "binascii", "bisect", "collections", "copy",
    "dataclasses", "enum", "fnmatch", "functools", "hashlib", "heapq", "ipaddress",
    "itertools", "json", "math", "operator", "posixpath", "re", "shlex", "string",
    "textwrap", "types", "typing",
})

# Modules on PURE_STDLIB that also hold functions doing I/O: only the names
# listed here may be used from them.  posixpath's `exists`, `realpath`,
# `abspath`, `expanduser`, `getsize`... touch the file system or the
# environment; its string functions do not.
PURE_ATTRIBUTES = {
    "posixpath": frozenset({
        "basename", "commonpath", "commonprefix", "dirname", "isabs", "join",
        "normcase", "normpath", "sep", "split", "splitext",
    }),
}

# Packages below the engine: they never import engine, api or backend.
LOWER_LAYERS = (
    "oci", "runtime", "cgroups", "images", "network", "volumes", "util", "build",
)
UPPER_LAYERS = ("engine", "api", "backend")

MAX_MODULE_LINES = 600


@dataclass(frozen=True)
class Import:
    importer: str      # the importing module, e.g. "dockyard.api.app"
    target: str        # the resolved imported module, e.g. "dockyard.engine.lifecycle"
    path: str          # the importing file, relative to the package's parent
    line: int
    statement: str     # the import statement as written
    where: str         # "module level", "in function f", "under TYPE_CHECKING", ...

    def describe(self) -> str:
        return f"{self.path}:{self.line}: `{self.statement}` ({self.where})"


@dataclass
class Tree:
    package: str                                    # "dockyard"
    root: Path                                      # the package directory
    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    # uses of `module.attribute` for the modules in PURE_ATTRIBUTES
    attribute_uses: list[Import] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root.parent).as_posix()

    def internal(self, name: str) -> bool:
        return in_package(name, self.package)


def in_package(name: str, package: str) -> bool:
    """True when `name` is `package` or one of its submodules."""
    return name == package or name.startswith(package + ".")


def module_name(root: Path, package: str, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def load_tree(root: Path) -> Tree:
    """Parse every module under the package directory `root`."""
    root = Path(root)
    tree = Tree(package=root.name, root=root)
    files = sorted(root.rglob("*.py"))
    for path in files:
        tree.modules[module_name(root, tree.package, path)] = path
    for path in files:
        _ImportCollector(tree, module_name(root, tree.package, path), path).run()
    return tree


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, tree: Tree, module: str, path: Path) -> None:
        self.tree = tree
        self.module = module
        self.path = path
        self.source = path.read_text()
        self.lines = self.source.encode().splitlines()
        self.is_package = path.name == "__init__.py"
        self.scopes: list[str] = []
        self.aliases: dict[str, str] = {}   # local name -> a PURE_ATTRIBUTES module

    def run(self) -> None:
        self.visit(ast.parse(self.source, filename=str(self.path)))

    # where an import sits

    def _where(self) -> str:
        return self.scopes[-1] if self.scopes else "module level"

    def _scoped(self, label: str, node: ast.AST) -> None:
        self.scopes.append(label)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(f"in function {node.name}", node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(f"in function {node.name}", node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(f"in class {node.name}", node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.scopes.append("under TYPE_CHECKING")
            for stmt in node.body:
                self.visit(stmt)
            self.scopes.pop()
            for stmt in node.orelse:
                self.visit(stmt)
            return
        self.generic_visit(node)

    # the imports themselves

    def _statement(self, node: ast.stmt | ast.expr) -> str:
        """The node's source on one line (ast columns count UTF-8 bytes)."""
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        if first == last:
            text = self.lines[first][node.col_offset:node.end_col_offset]
        else:
            text = b" ".join([self.lines[first][node.col_offset:], *self.lines[first + 1:last],
                              self.lines[last][:node.end_col_offset]])
        return " ".join(text.decode().split())

    def _add(self, node: ast.stmt | ast.expr, target: str) -> None:
        self.tree.imports.append(Import(
            importer=self.module, target=target, path=self.tree.rel(self.path),
            line=node.lineno, statement=self._statement(node), where=self._where(),
        ))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)
            if alias.name in PURE_ATTRIBUTES:
                self.aliases[alias.asname or alias.name] = alias.name
            elif alias.asname is None:
                # `import a.b` binds `a`
                top = alias.name.split(".")[0]
                if top in PURE_ATTRIBUTES:
                    self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve_base(node)
        targets: dict[str, None] = {}
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            targets[candidate if candidate in self.tree.modules else base] = None
        for target in targets:
            self._add(node, target)
        for alias in node.names:
            if base in PURE_ATTRIBUTES and alias.name not in PURE_ATTRIBUTES[base]:
                self._add_attribute_use(node, base, alias.name)

    def _resolve_base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        # `from . import x` in a package's __init__ is relative to the package
        # itself; in a plain module, to the package holding it.
        parts = self.module.split(".")
        if not self.is_package:
            parts = parts[:-1]
        if node.level > 1:
            parts = parts[: len(parts) - (node.level - 1)]
        if node.module:
            parts = [*parts, *node.module.split(".")]
        return ".".join(parts)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("literal") and __import__("literal")
        func = node.func
        dynamic = (
            (isinstance(func, ast.Attribute) and func.attr == "import_module")
            or (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))
        )
        if dynamic and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node, node.args[0].value)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            module = self.aliases[node.value.id]
            if node.attr not in PURE_ATTRIBUTES[module]:
                self._add_attribute_use(node, module, node.attr)
        self.generic_visit(node)

    def _add_attribute_use(self, node: ast.stmt | ast.expr, module: str, attr: str) -> None:
        self.tree.attribute_uses.append(Import(
            importer=self.module, target=f"{module}.{attr}", path=self.tree.rel(self.path),
            line=node.lineno, statement=self._statement(node), where=self._where(),
        ))


def _is_type_checking(test: ast.expr) -> bool:
    return (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


# the rules


def imports_from(tree: Tree, subpackage: str) -> Iterator[Import]:
    """Every import made by a module of `<package>.<subpackage>`."""
    prefix = f"{tree.package}.{subpackage}"
    return (i for i in tree.imports if in_package(i.importer, prefix))


def is_pure_stdlib(name: str) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:n]) in PURE_STDLIB for n in range(1, len(parts) + 1))


def check_pure(tree: Tree, subpackage: str) -> list[str]:
    """`<package>.<subpackage>` imports only itself, `<package>.errors` and
    PURE_STDLIB (and from PURE_ATTRIBUTES modules only their listed names)."""
    own = f"{tree.package}.{subpackage}"
    errors_module = f"{tree.package}.errors"
    found = []
    for imp in imports_from(tree, subpackage):
        if in_package(imp.target, own) or imp.target == errors_module:
            continue
        if not tree.internal(imp.target) and is_pure_stdlib(imp.target):
            continue
        found.append(f"{imp.describe()}: {own} is pure and may import only {own}.*, "
                     f"{errors_module} and standard-library modules that do no I/O, "
                     f"not {imp.target}")
    for use in tree.attribute_uses:
        if in_package(use.importer, own):
            found.append(f"{use.describe()}: {own} is pure, and {use.target} is not one "
                         f"of the I/O-free names it may use")
    return found


def check_lower_layers(tree: Tree) -> list[str]:
    """The packages below the engine never import engine, api or backend."""
    upper = [f"{tree.package}.{name}" for name in UPPER_LAYERS]
    found = []
    for layer in LOWER_LAYERS:
        for imp in imports_from(tree, layer):
            hit = next((u for u in upper if in_package(imp.target, u)), None)
            if hit:
                found.append(f"{imp.describe()}: {tree.package}.{layer} is below the "
                             f"engine and must not import {hit} ({imp.target})")
    return found


def check_api(tree: Tree) -> list[str]:
    """api imports from the package only the package itself (its version
    constants), api.*, backend.* and errors."""
    pkg = tree.package
    allowed = (f"{pkg}.api", f"{pkg}.backend")
    found = []
    for imp in imports_from(tree, "api"):
        if not tree.internal(imp.target) or imp.target in (pkg, f"{pkg}.errors"):
            continue
        if any(in_package(imp.target, a) for a in allowed):
            continue
        found.append(f"{imp.describe()}: {pkg}.api reaches the engine only through "
                     f"{pkg}.backend, and may not import {imp.target}")
    return found


@dataclass(frozen=True)
class Cycle:
    modules: tuple[str, ...]          # m0 -> m1 -> ... -> m0
    closing: tuple[Import, ...]       # the import each arrow stands for

    def describe(self) -> str:
        chain = " -> ".join([*self.modules, self.modules[0]])
        lines = "\n".join(f"    {imp.describe()}" for imp in self.closing)
        return f"import cycle {chain}:\n{lines}"


def _internal_graph(tree: Tree) -> dict[str, dict[str, Import]]:
    """importer -> {imported module: the first import line making that edge}."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in tree.modules}
    for imp in tree.imports:
        # a package importing a name from itself is no edge between modules
        if imp.target in tree.modules and imp.target != imp.importer:
            graph[imp.importer].setdefault(imp.target, imp)
    return graph


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_cycle_through(graph: dict[str, dict[str, Import]], members: set[str],
                            start: str) -> list[str]:
    """The shortest path start -> ... -> start inside one component (BFS)."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if child not in seen:
                    seen.add(child)
                    previous[child] = node
                    following.append(child)
        frontier = following
    return []


def find_cycles(tree: Tree) -> list[Cycle]:
    """For every tangle of mutually importing modules, the shortest cycle
    through each of its modules (each cycle once)."""
    graph = _internal_graph(tree)
    cycles: list[Cycle] = []
    seen: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        for start in component:
            path = _shortest_cycle_through(graph, members, start)
            turn = path.index(min(path))
            canonical = tuple(path[turn:] + path[:turn])
            if canonical in seen:
                continue
            seen.add(canonical)
            closing = tuple(
                graph[a][canonical[(n + 1) % len(canonical)]] for n, a in enumerate(canonical)
            )
            cycles.append(Cycle(canonical, closing))
    return cycles


def check_no_cycles(tree: Tree) -> list[str]:
    return [c.describe() for c in find_cycles(tree)]


def check_module_length(tree: Tree, limit: int = MAX_MODULE_LINES) -> list[str]:
    found = []
    for path in tree.modules.values():
        count = len(path.read_text().splitlines())
        if count > limit:
            found.append(f"{tree.rel(path)}:{limit + 1}: {count} lines, past the "
                         f"{limit}-line limit; split the module")
    return found


def check_package_docstrings(tree: Tree) -> list[str]:
    """Every directory holding modules is a package whose `__init__.py` says
    in a docstring what it owns (a layout that shows the architecture)."""
    found = []
    for directory in sorted({path.parent for path in tree.modules.values()}):
        init = directory / "__init__.py"
        if not init.exists():
            found.append(f"{tree.rel(directory)}/: no __init__.py; a package says "
                         f"what it owns in its docstring")
        elif not ast.get_docstring(ast.parse(init.read_text())):
            found.append(f"{tree.rel(init)}:1: no docstring saying what the package owns")
    return found


def check_all(tree: Tree) -> dict[str, list[str]]:
    """Every rule, by name, with its violations."""
    return {
        "oci is pure": check_pure(tree, "oci"),
        "backend is pure": check_pure(tree, "backend"),
        "lower layers stay below": check_lower_layers(tree),
        "api reaches only backend": check_api(tree),
        "no import cycles": check_no_cycles(tree),
        "module length": check_module_length(tree),
        "packages say what they own": check_package_docstrings(tree),
    }


def report(violations: Iterable[str]) -> str:
    return "\n".join(violations)
