"""No import inside a function in the actions or the Rasa channel, unless it says why below.

``tests/test_layers.py`` checks the direction of every import and finds cycles (counting imports inside
functions too); this adds that the actions (``actions/``) and the Rasa plugin (``bot/rasa/``) import the
project's modules at their top, where a reader sees them, except the store's lazily loaded backends.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("actions", "bot", "telephony")
_SQLALCHEMY = "SQLAlchemy loads with the first store opened, not on import"
LAZY = {
    ("actions/store.py", "actions.backends.demo"): _SQLALCHEMY,
    ("actions/store.py", "actions.backends.sql"): _SQLALCHEMY,
}
"""(file, module) pairs allowed inside a function, and why."""


def inner_imports(source: str) -> list[str]:
    """Project modules imported inside a function body of ``source``."""
    found: list[str] = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append(node.module)
    return [name for name in found if name.split(".")[0] in PROJECT]


def test_project_imports_are_at_the_top() -> None:
    files = sorted([*(REPO / "actions").rglob("*.py"), *(REPO / "bot" / "rasa").rglob("*.py")])
    assert len(files) > 20, "the actions were not found"
    found = [
        f"{path.relative_to(REPO)} imports {name} inside a function"
        for path in files
        for name in inner_imports(path.read_text(encoding="utf-8"))
        if (path.relative_to(REPO).as_posix(), name) not in LAZY
    ]
    assert not found, "\n".join(found)


def test_the_check_can_fail() -> None:
    source = "def run():\n    from actions.tasks import TASKS\n    import json\n    return TASKS\n"
    assert inner_imports(source) == ["actions.tasks"]
