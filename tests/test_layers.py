"""The structure holds: imports point one way, nothing imports in a circle, and no file grows past a size a
reader can hold without saying why.

Layers, lowest first (each may import the ones below it, never above)::

    telephony/        wire <-> typed frames, call-control protocols, the call-state vocabulary
    actions/shared/   pure helpers both sides of Rasa use (spoken forms, dates, YAML, handoff payload)
    actions/          the Rasa action server (rasa-sdk) and its backends
    bot/              the gateway's per-call runtime; bot/rasa/ the plugin inside the Rasa process;
                      bot/tools/ launcher, training, editor checks, model fetch
    bench/, tests/

The graph is read from the source (every ``import``, at module level or inside a function, since an import
moved into a function to dodge a cycle is still a cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("telephony", "actions", "bot", "bench")
MAX_LINES = 600
LONG_FILE_NOTE = "Why this file is long:"
"""A file over ``MAX_LINES`` says why near its top (within its first 40 lines), after these words."""


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(project module imported, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, node.lineno, known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    yield full, node.lineno
                else:
                    yield from _resolve(base, node.lineno, known)


def _resolve(dotted: str, line: int, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            yield candidate, line
            return
        parts.pop()


def graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {name: sorted(set(imports_of(name, path, known))) for name, path in known.items()}


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


STORE_READERS = {"bot.gateway": "actions.store"}
"""The one exception to "the gateway uses actions.shared only": the gateway process opens the customer store's
public face (``actions.store``, never a backend) for the phone lines' opening hours (after hours); the call
sessions see only the ``LineSource`` protocol."""


def _layer_violations(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    problems = []
    for source, targets in edges.items():
        for target, line in targets:
            where = f"{source} (line {line}) imports {target}"
            if _in(source, "telephony") and (_in(target, "bot") or _in(target, "actions")):
                problems.append(f"{where}: telephony/ knows nothing of bot/ or actions/")
            if _in(source, "actions") and _in(target, "bot"):
                problems.append(f"{where}: actions/ never imports the gateway")
            if _in(source, "actions.shared") and _in(target, "actions") and not _in(target, "actions.shared"):
                problems.append(f"{where}: actions/shared/ is pure (no rasa-sdk actions, no store)")
            if _in(source, "bot") and not _in(source, "bot.tools"):
                if STORE_READERS.get(source) == target:
                    continue
                if _in(target, "actions") and not _in(target, "actions.shared"):
                    problems.append(f"{where}: the gateway and the Rasa plugin use actions.shared only")
            if _in(source, "bot") and not _in(source, "bot.tools") and _in(target, "bot.tools"):
                problems.append(f"{where}: the runtime does not depend on the tooling")
            if not _in(source, "bench") and _in(target, "bench"):
                problems.append(f"{where}: nothing imports the benchmarks")
    return problems


def _third_party_violations() -> list[str]:
    """actions/shared/ imports neither Rasa nor rasa-sdk; telephony/ no Rasa either."""
    problems = []
    for name, path in modules().items():
        banned = ()
        if _in(name, "actions.shared"):
            banned = ("rasa", "rasa_sdk", "sanic", "panoramisk")
        elif _in(name, "telephony"):
            banned = ("rasa", "rasa_sdk", "sanic")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for imported in names:
                if imported.split(".")[0] in banned:
                    problems.append(f"{name} (line {node.lineno}) imports {imported}")
    return problems


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w, _ in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or any(t == v for t, _ in edges.get(v, [])):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_imports_point_one_way() -> None:
    assert not _layer_violations(graph()), "\n".join(_layer_violations(graph()))
    assert not _third_party_violations(), "\n".join(_third_party_violations())


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, f"import cycles: {found}"


def test_the_checks_can_fail() -> None:
    """The checkers see what they are for, on a made-up graph."""
    edges = {
        "telephony.server": [("bot.session", 3)],
        "actions.shared.spoken": [("actions.orders", 5)],
        "bot.session": [("actions.orders", 7), ("telephony.server", 2)],
        "actions.orders": [("actions.shared.spoken", 1)],
    }
    problems = _layer_violations(edges)
    assert any("telephony/ knows nothing" in p for p in problems)
    assert any("actions/shared/ is pure" in p for p in problems)
    assert any("actions.shared only" in p for p in problems)
    assert cycles(edges) == [["actions.orders", "actions.shared.spoken"], ["bot.session", "telephony.server"]]


def test_no_file_too_long_without_a_reason() -> None:
    too_long = []
    for path in sorted(REPO.glob("*/**/*.py")):
        if ".venv" in path.parts or path.relative_to(REPO).parts[0] not in (*PACKAGES, "tests"):
            continue
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(LONG_FILE_NOTE in line for line in lines[:40]):
            too_long.append(f"{path.relative_to(REPO)}: {len(lines)} lines")
    assert not too_long, f"over {MAX_LINES} lines without '{LONG_FILE_NOTE}' at the top: {too_long}"
