"""bot/tools/: what its layout promises, read from the source (nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "bot" / "tools"
MAX_LINES = 600


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_the_gateway_never_imports_the_tools() -> None:
    runtime = [p for p in _modules(REPO / "bot") if TOOLS not in p.parents]
    assert runtime, "no gateway modules found"
    for path in runtime:
        tools = sorted(m for m in _imports(path) if m == "bot.tools" or m.startswith("bot.tools."))
        assert not tools, f"{path.relative_to(REPO)} imports {tools}"


def test_one_repo_root_and_one_reader_of_rasa_yaml() -> None:
    for path in _modules(TOOLS):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assigned = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        assert "REPO_ROOT" not in assigned, f"{path.relative_to(REPO)}: use actions.shared.paths.REPO_ROOT"
        if path.name != "rasayaml.py":
            ruamel = sorted(m for m in _imports(path) if m.startswith("ruamel"))
            assert not ruamel, f"{path.relative_to(REPO)} reads YAML itself ({ruamel}): use rasayaml"


def test_every_tool_module_says_what_it_is_and_stays_small() -> None:
    for path in _modules(TOOLS):
        text = path.read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(REPO)} has no docstring"
        assert len(text.splitlines()) <= MAX_LINES, f"{path.relative_to(REPO)} is over {MAX_LINES} lines"
