"""The actions' and the Rasa plugin's import rules, read from the source (no import runs):

- ``actions/shared/`` imports no Rasa, rasa-sdk, Sanic, gateway (``bot``) or other ``actions`` code;
- the Rasa channel (``bot/rasa/``) imports, of the project, ``actions.shared`` only;
- the modules of ``actions/`` and ``bot/rasa/`` import each other without a cycle;
- no project module is imported inside a function there, except where a reason is listed below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("actions", "bot", "telephony")
LAZY_IMPORTS = {
    ("actions.store", "actions.backends.demo"): "SQLAlchemy loads with the first store opened, not on import",
    ("actions.store", "actions.backends.sql"): "SQLAlchemy loads with the first store opened, not on import",
}
"""(importing module, imported module) pairs allowed inside a function, and why."""


def modules(*folders: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


ALL = modules("actions", "bot/rasa")


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, inside a function?) for each import in ``path`` (not in ``TYPE_CHECKING`` blocks)."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                yield from ((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert not child.level, f"{name}: the project imports absolutely"
                base = child.module or ""
                for alias in child.names:
                    yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in ALL else base), inner
            else:
                yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith("actions.shared")))
def test_the_shared_tree_is_pure(name: str) -> None:
    for imported, _ in imports(name, ALL[name]):
        assert top(imported) not in ("rasa", "rasa_sdk", "sanic", "bot"), (name, imported)
        if top(imported) == "actions":
            assert imported.startswith("actions.shared"), (name, imported)


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith("bot.rasa")))
def test_the_rasa_channel_imports_only_the_shared_tree(name: str) -> None:
    for imported, _ in imports(name, ALL[name]):
        if top(imported) in PROJECT:
            assert imported.startswith("actions.shared"), (name, imported)


def test_no_import_cycle_and_no_project_import_inside_a_function() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in ALL.items():
        graph[name] = set()
        for imported, in_function in imports(name, path):
            if top(imported) not in PROJECT:
                continue
            if in_function:
                assert (name, imported) in LAZY_IMPORTS, f"{name} imports {imported} inside a function"
                continue
            target = next((m for m in (imported, imported.rsplit(".", 1)[0]) if m in ALL), None)
            if target is not None and target != name:
                graph[name].add(target)
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert "actions.tasks" in graph and "bot.rasa.channel" in graph  # the walk saw the modules
