"""The import graph of src/parity has no cycle (issue 10).

Edges are the module-level imports of ``parity.*`` (imports inside functions and under
``if TYPE_CHECKING:`` run later or never, so they cannot deadlock an import). Importing
``a.b.c`` also runs the ``__init__`` of ``a.b``, so that package is an edge too, unless it is
a package of the importer itself (a package's ``__init__`` importing its own children is the
normal pattern). ``from pkg import submodule`` is an edge to the submodule only: Python finds
it in ``sys.modules`` even while ``pkg/__init__`` is still running.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "parity"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(body: list[ast.stmt], module: str, is_package: bool,
             modules: set[str]) -> Iterator[str]:
    """Targets of the imports that run when ``module`` is imported."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, module, is_package, modules)
            yield from _imports(node.orelse, module, is_package, modules)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *[handler.body for handler in node.handlers]):
                yield from _imports(block, module, is_package, modules)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in modules else target


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same top package its import runs (see module docstring)."""
    paths = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in _imports(tree.body, module, path.name == "__init__.py", set(paths)):
            if not (target == top or target.startswith(top + ".")):
                continue
            while target and target not in paths:  # `from m import function` -> m
                target = target.rpartition(".")[0]
            if target and target != module:
                deps.add(target)
            package = target.rpartition(".")[0]
            while package and package != top:
                if not (module + ".").startswith(package + ".") and package in paths:
                    deps.add(package)
                package = package.rpartition(".")[0]
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, set())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(graph: dict[str, set[str]], component: list[str]) -> str:
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & set(component))]
    return "import cycle: " + "; ".join(edges)


def test_parity_has_no_import_cycle() -> None:
    graph = import_graph(SRC)
    assert len(graph) > 100  # the scan saw the tree
    assert [_describe(graph, c) for c in cycles(graph)] == []


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_the_check_finds_a_module_level_cycle(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.b import thing\n",
        "b.py": "import pkg.c\n",
        "c.py": "from pkg import a\n",
    })
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_check_finds_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.sub.x import thing\n",
        "sub/__init__.py": "from pkg.sub.y import other\n",
        "sub/x.py": "thing = 1\n",
        "sub/y.py": "from pkg.a import z\n",
    })
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.sub", "pkg.sub.y"]]


def test_the_check_ignores_deferred_imports(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "from pkg import a\n",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import T\n",
        "b.py": "from pkg import a\n\ndef f():\n    from pkg import b\n",
        "c.py": "from pkg import b\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.a"] == set()
    assert graph["pkg.c"] == {"pkg.b"}
    assert cycles(graph) == []


TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_imports_from_a_conftest_or_a_test_module() -> None:
    """Shared helpers live in non-test modules (tests/services.py, tests/<area>/helpers.py):
    importing a conftest or a test module runs it a second time under another name."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):  # `from m import x`: m, and m.x if a module
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                last = name.rpartition(".")[2]
                if name.startswith("tests") and (last == "conftest" or last.startswith("test_")):
                    offenders.append(f"{path.relative_to(TESTS)}:{node.lineno}: {name}")
    assert offenders == []
