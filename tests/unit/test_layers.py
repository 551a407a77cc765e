"""The floors of the tree: every package imports only the floors below it, with no cycles.

The check reads every ``import`` statement of the project's code (module level, inside
functions and under ``TYPE_CHECKING`` alike: a lazy import is still a dependency) and fails on
an import of a higher floor, an import of another package's private name, and a cycle between
packages. docs/architecture.md draws the same floors.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# floor of each top-level package: a module may import only lower floors and its own package
FLOORS = {
    "core": 0,
    "demo": 1,
    "providers": 2,
    "lifecycle": 3,
    "apps": 4,
    "dags": 5,
    "plugins": 5,
    "scripts": 6,
}
# dags/ is the DAG bundle: Airflow puts it on sys.path, so its package `wiring` imports by that name
ALIASES = {"wiring": "dags.wiring"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str) -> str:
    head = name.split(".")[0]
    return ALIASES[head] + name[len(head) :] if head in ALIASES else name


def _imports(path: Path, module_name: str | None = None) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_name = module_name or _module_name(path)
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, _resolve(alias.name), []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = _resolve(node.module or "")
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _project_files() -> list[Path]:
    return sorted(
        path for top in FLOORS for path in (ROOT / top).rglob("*.py") if "__pycache__" not in path.parts
    )


def _package_of(module: str) -> str:
    """The package a module belongs to: its folder (``providers.aws.training`` -> ``providers.aws``)."""
    path = ROOT / Path(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0] or module


def _project_module(module: str) -> bool:
    return module.split(".")[0] in FLOORS


def _edges() -> list[tuple[str, int, str, list[str]]]:
    return [
        (_module_name(path), line, target, names)
        for path in _project_files()
        for line, target, names in _imports(path)
        if _project_module(target)
    ]


def _floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def test_every_floor_exists():
    assert all((ROOT / top).is_dir() for top in FLOORS)


def test_no_package_imports_a_higher_floor():
    upward = [
        f"{source}:{line} imports {target} (floor {_floor(target)} > {_floor(source)})"
        for source, line, target, _ in _edges()
        if _floor(target) > _floor(source)
    ]
    assert not upward, "imports of a higher floor:\n" + "\n".join(upward)


def test_no_package_imports_a_private_name_of_another_package():
    private = [
        f"{source}:{line} imports {target}.{name}"
        for source, line, target, names in _edges()
        for name in names
        if _package_of(source) != _package_of(target)
        and (
            name.startswith("_")
            or any(part.startswith("_") and part != "__init__" for part in target.split("."))
        )
    ]
    assert not private, "private names imported from another package:\n" + "\n".join(private)


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, _, target, _ in _edges():
        a, b = _package_of(source), _package_of(target)
        if a != b:
            graph[a].add(b)
    cycles = _cycles(graph)
    assert not cycles, "cycles between packages:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_checks_see_an_upward_import(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import os\nfrom lifecycle.train import start_training\nfrom . import sibling\n")
    names = [module for _, module, _ in _imports(source, "core.ml.example")]
    assert names == ["os", "lifecycle.train", "core.ml"]


# -- stages by reference: no string names a function of lifecycle ----------------------------------

# "lifecycle.train.start_training": a dotted path to a module's function, dispatched by importlib
DOTTED_FUNCTION = re.compile(r"\blifecycle(?:\.[a-z_]+){2,}\b")


def _dotted_names(path: Path, root: Path = ROOT) -> list[str]:
    """String constants of ``path`` naming a function of lifecycle by dotted path (not docstrings)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, documented)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and DOTTED_FUNCTION.search(node.value)
    ]


def test_no_string_names_a_stage_function():
    """dags/ and lifecycle/ reach a stage by imported reference, a deferred job by stage and step name."""
    files = sorted(p for top in ("dags", "lifecycle") for p in (ROOT / top).rglob("*.py"))
    found = [name for path in files for name in _dotted_names(path)]
    assert not found, "strings naming a function of lifecycle (import it instead):\n" + "\n".join(found)


def test_the_dotted_name_check_sees_a_dispatch(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        '"""Docs may say lifecycle.train.start_training."""\n'
        'run_stage("lifecycle.train.start_training")\n'
        'then = {"then": f"lifecycle.jobs.{name}"}\n'
        'logger = "lifecycle.train"\n'
    )
    assert _dotted_names(source, tmp_path) == ["example.py:2: 'lifecycle.train.start_training'"]


def test_test_modules_have_unique_names():
    # tests/ has no __init__.py files: pytest imports each test module by its file name, so two
    # modules with one name in two folders stop the whole run at collection
    names = [path.name for path in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
