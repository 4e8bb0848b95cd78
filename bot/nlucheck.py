"""Check the editors' data and measure how well it is understood: ``python -m bot.nlucheck [--no-cv]``.

Two steps, the second only when the first finds nothing wrong:

1. **Validation** of ``nlu-data/`` (or ``--data DIR``). Our own checks first, each problem as
   ``file:line: message``:

   - YAML an editor broke (syntax, or the wrong shape: a list where keys belong, examples not starting ``-``);
   - the same example (lower case, spacing and punctuation ignored) under two intents, or twice in one;
   - too few examples: :data:`MIN_EXAMPLES_MAIN` for intents the stories and rules use,
     :data:`MIN_EXAMPLES_OTHER` for the rest;
   - responses used in stories, rules, forms or ``actions/*.py`` but missing from the domain, and (a warning
     only) responses in the domain nothing uses;
   - intents in the domain without examples, examples or stories for intents the domain does not declare;
   - ``faq.yml`` (the frequently asked questions) as :func:`actions.info.load_faq` reads it: YAML, shape,
     unique ids and questions, at least three questions and a short spoken answer per entry.

   Then, if those pass, Rasa's own validator through :func:`bot.train.validate` (the check ``make run`` does
   before training; it also catches story conflicts). Its messages name no lines, ours do, which is why ours
   run first.
2. **NLU cross-validation** (``rasa test nlu --cross-validation``, :data:`DEFAULT_FOLDS` folds, fold split
   seeded so two runs on the same data agree) and an HTML report in ``reports/nlu/index.html``: precision,
   recall and F1 per intent, macro and weighted averages, the validation warnings, the worst confusions with
   the phrases that caused them, and a confusion-matrix image. It prints the macro F1 and the report's path.

``--no-cv`` stops after step 1 (seconds instead of minutes) for quick edits.

Exit status: 0 valid (and report written), 1 invalid data, 2 cross-validation failed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot import train

MIN_EXAMPLES_MAIN = 25
"""Fewest examples for an intent the stories or rules react to."""
MIN_EXAMPLES_OTHER = 10
"""Fewest examples for any other intent."""
TARGET_MACRO_F1 = 0.90
"""What the project asks of cross-validation (issue 3, "Done when")."""
DEFAULT_FOLDS = 5
DEFAULT_SEED = 7
"""Seeds the fold split (Rasa shuffles with numpy's global generator); the config seeds DIET itself."""
WORST_CONFUSIONS = 10
"""How many confused pairs the report lists."""
EXAMPLES_PER_CONFUSION = 3

RASA_DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start", "nlu_fallback"})
"""Intents Rasa adds to every domain (``rasa.shared.core.constants.DEFAULT_INTENTS``; Rasa not imported)."""
RASA_DEFAULT_RESPONSES = frozenset({"utter_default", "utter_ask_rephrase"})
"""Responses Rasa's built-in fallback actions say when they exist: never reported as unused."""

REPORT_FILE = "index.html"
MATRIX_FILE = "confusion_matrix.png"
AVERAGE_KEYS = frozenset({"accuracy", "micro avg", "macro avg", "weighted avg"})
"""Keys of Rasa's ``intent_report.json`` that are not intents."""

_ENTITY = re.compile(r"\[(?P<text>[^\]]+?)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_CODE_RESPONSE = re.compile(r"""(?P<q>["'])(?P<name>utter_[a-z0-9_]*)(?P<closed>(?P=q))?""")

# The ``-c`` program the cross-validation runs in: numpy's global generator seeded, then Rasa's own CLI.
_SEEDED_RASA = (
    "import sys\n"
    "import numpy\n"
    "numpy.random.seed(int(sys.argv.pop(1)))\n"
    "sys.argv[0] = 'rasa'\n"
    "from rasa.__main__ import main\n"
    "main()\n"
)


# --- findings -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in the data: where it is and what is wrong. Warnings do not stop anything."""

    path: str
    line: int | None
    """1-based; ``None`` when the problem is a whole file's or Rasa's (which names no lines)."""
    message: str
    error: bool = True

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = self.message if self.error else f"warning: {self.message}"
        return f"{where}: {text}" if where else text

    def sort_key(self) -> tuple[str, int, str]:
        return (self.path, self.line or 0, self.message)


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a file, for messages."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Example:
    """One training example as written (entity annotations removed) and its comparison key."""

    intent: str
    text: str
    key: str
    where: Where


@dataclass(slots=True)
class NluData:
    """What the checks need from ``nlu-data/`` and ``actions/``, each name with where it was seen."""

    domain_intents: dict[str, Where] = field(default_factory=dict)
    responses: dict[str, Where] = field(default_factory=dict)
    domain_actions: dict[str, Where] = field(default_factory=dict)
    form_slots: dict[str, list[str]] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    intent_blocks: dict[str, Where] = field(default_factory=dict)
    """Where each intent's first ``- intent:`` entry is."""
    story_intents: dict[str, list[Where]] = field(default_factory=lambda: defaultdict(list))
    story_actions: dict[str, list[Where]] = field(default_factory=lambda: defaultdict(list))
    code_responses: dict[str, list[Where]] = field(default_factory=lambda: defaultdict(list))
    code_prefixes: dict[str, list[Where]] = field(default_factory=lambda: defaultdict(list))
    """``"utter_handoff_" + reason`` and the like: some response must start with the prefix."""

    def example_counts(self) -> dict[str, int]:
        """Distinct examples (by comparison key) per intent."""
        keys: dict[str, set[str]] = defaultdict(set)
        for ex in self.examples:
            keys[ex.intent].add(ex.key)
        return {intent: len(k) for intent, k in keys.items()}


def normalise(text: str) -> str:
    """An example's comparison key: entity annotations removed, lower case, no punctuation, single spaces."""
    plain = _ENTITY.sub(lambda m: m.group("text"), text)
    return " ".join(_PUNCTUATION.sub("", plain.lower()).split())


# --- reading YAML with line numbers ------------------------------------------------------------------------


class _Shape(Exception):
    """The YAML parsed but has the wrong shape for Rasa; carries the line."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line_of(node: Any, key: Any = None, index: int | None = None) -> int | None:
    """1-based line of a ruamel node, of one of its keys, or of one of its items (``None`` if unknown)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1
        if index is not None:
            return int(lc.item(index)[0]) + 1
        return int(lc.line) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _value_line(node: Any, key: Any) -> int | None:
    """1-based line where the value of ``node[key]`` starts (for a ``|`` block: the line of the ``|``)."""
    try:
        return int(node.lc.value(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def load_yaml(path: Path, shown: str) -> tuple[Any, list[Finding]]:
    """Parse one file keeping line numbers; syntax errors and undecodable bytes become findings."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        return None, [Finding(shown, bad_line, "not UTF-8 text (save the file as UTF-8)")]
    try:
        return YAML(typ="rt", pure=True).load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        line = mark.line + 1 if mark else None
        column = f" (column {mark.column + 1})" if mark else ""
        return None, [Finding(shown, line, f"YAML error{column}: {what}")]
    except YAMLError as exc:
        return None, [Finding(shown, None, f"YAML error: {exc}")]


def _mapping(node: Any, line: int | None, what: str) -> Mapping[Any, Any]:
    if not isinstance(node, Mapping):
        raise _Shape(line, f"{what} should be a set of 'key: value' lines, found {_kind(node)}")
    return node


def _sequence(node: Any, line: int | None, what: str) -> Sequence[Any]:
    if not isinstance(node, list):
        raise _Shape(line, f"{what} should be a list of '- ' items, found {_kind(node)}")
    return node


def _kind(node: Any) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, Mapping):
        return "'key: value' lines"
    if isinstance(node, list):
        return "a list"
    return f"the text {str(node)[:40]!r}"


def _name(node: Any, line: int | None, what: str) -> str:
    if not isinstance(node, str) or not node.strip():
        raise _Shape(line, f"{what} should be a name, found {_kind(node)}")
    return node.strip()


# --- reading the domain, training data and actions ------------------------------------------------------


def read_domain(doc: Any, shown: str, data: NluData) -> None:
    """Intents, responses, actions and forms of ``domain.yml``."""
    top = _mapping(doc, 1, "domain.yml")
    if "intents" in top:
        intents = _sequence(top["intents"], _value_line(top, "intents"), "'intents:'")
        for i, item in enumerate(intents):
            line = _line_of(intents, index=i) or _line_of(top, "intents")
            if isinstance(item, Mapping):  # - greet: {use_entities: [...]}
                if len(item) != 1:
                    raise _Shape(line, "an intent with settings should be a single 'name: {...}' item")
                item = next(iter(item))
            data.domain_intents.setdefault(_name(item, line, "an intent"), Where(shown, line or 0))
    if "responses" in top:
        responses = _mapping(top["responses"], _line_of(top, "responses"), "'responses:'")
        for name, variants in responses.items():
            line = _line_of(responses, key=name)
            name = _name(name, line, "a response")
            _sequence(variants, line, f"response {name!r}")
            data.responses[name] = Where(shown, line or 0)
    if "actions" in top:
        actions = _sequence(top["actions"], _value_line(top, "actions"), "'actions:'")
        for i, item in enumerate(actions):
            line = _line_of(actions, index=i)
            if isinstance(item, Mapping) and len(item) == 1:  # - action_x: {send_domain: true}
                item = next(iter(item))
            data.domain_actions.setdefault(_name(item, line, "an action"), Where(shown, line or 0))
    if "forms" in top:
        forms = _mapping(top["forms"], _line_of(top, "forms"), "'forms:'")
        for form, spec in forms.items():
            line = _line_of(forms, key=form)
            form = _name(form, line, "a form")
            slots: list[str] = []
            if isinstance(spec, Mapping) and "required_slots" in spec:
                required = spec["required_slots"]
                slots = [str(s) for s in (required if isinstance(required, (list, Mapping)) else [])]
            data.form_slots[form] = slots


def _example_lines(block: str, value_line: int | None) -> Iterator[tuple[str, int | None, bool]]:
    """``(example, line, well_formed)`` for each non-blank line of an ``examples:`` text.

    In a ``|`` block (what editors write) each line is its own file line, starting below the ``|``; any other
    kind of text is attributed to the ``examples:`` line.
    """
    from ruamel.yaml.scalarstring import LiteralScalarString

    literal = isinstance(block, LiteralScalarString) and value_line is not None
    for offset, raw in enumerate(block.splitlines()):
        if not raw.strip():
            continue
        line = value_line + 1 + offset if literal and value_line is not None else value_line
        if not raw.startswith("-"):
            yield raw.strip(), line, False
        else:
            yield raw[1:].strip(), line, True


def _read_nlu(items: Any, top: Mapping[Any, Any], shown: str, data: NluData, found: list[Finding]) -> None:
    entries = _sequence(items, _value_line(top, "nlu"), "'nlu:'")
    for i, entry in enumerate(entries):
        line = _line_of(entries, index=i)
        entry = _mapping(entry, line, "an 'nlu:' item")
        if "intent" not in entry:
            if any(k in entry for k in ("synonym", "regex", "lookup")):
                continue
            raise _Shape(
                line, "an 'nlu:' item should start with 'intent:', 'synonym:', 'regex:' or 'lookup:'"
            )
        intent = _name(entry["intent"], line, "'intent:'")
        data.intent_blocks.setdefault(intent, Where(shown, line or 0))
        block = entry.get("examples")
        if block is None:
            found.append(Finding(shown, line, f"intent {intent!r} has no 'examples:'"))
            continue
        if isinstance(block, str):
            for text, ex_line, well_formed in _example_lines(block, _value_line(entry, "examples")):
                if not well_formed:
                    found.append(
                        Finding(
                            shown, ex_line, f"example line does not start with '- ' (Rasa skips it): {text!r}"
                        )
                    )
                elif not text:
                    found.append(Finding(shown, ex_line, f"empty example under intent {intent!r}"))
                else:
                    _add_example(data, intent, text, Where(shown, ex_line or line or 0))
        elif isinstance(block, list):  # - text: ... (with metadata)
            for j, item in enumerate(block):
                ex_line = _line_of(block, index=j) or line
                written = item.get("text") if isinstance(item, Mapping) else None
                if not isinstance(written, str) or not written.strip():
                    found.append(Finding(shown, ex_line, "an example in list form needs 'text: ...'"))
                    continue
                _add_example(data, intent, written.strip(), Where(shown, ex_line or 0))
        else:
            found.append(
                Finding(shown, line, f"'examples:' of {intent!r} should be a '|' block of '- ' lines")
            )


def _add_example(data: NluData, intent: str, written: str, where: Where) -> None:
    text = _ENTITY.sub(lambda m: m.group("text"), written)
    data.examples.append(Example(intent, text, normalise(written), where))


def _read_steps(steps: Any, line: int | None, shown: str, data: NluData) -> None:
    for i, step in enumerate(_sequence(steps, line, "'steps:'")):
        step_line = _line_of(steps, index=i) or line or 0
        if not isinstance(step, Mapping):
            raise _Shape(
                step_line, f"a step should be 'intent: ...', 'action: ...' or similar, found {_kind(step)}"
            )
        if "intent" in step:
            data.story_intents[_name(step["intent"], step_line, "'intent:'")].append(Where(shown, step_line))
        if "action" in step:
            data.story_actions[_name(step["action"], step_line, "'action:'")].append(Where(shown, step_line))
        if "or" in step:
            _read_steps(step["or"], step_line, shown, data)


def _read_stories(key: str, items: Any, top: Mapping[Any, Any], shown: str, data: NluData) -> None:
    entries = _sequence(items, _value_line(top, key), f"'{key}:'")
    for i, entry in enumerate(entries):
        line = _line_of(entries, index=i)
        entry = _mapping(entry, line, f"a '{key}:' item")
        if "steps" in entry:
            _read_steps(entry["steps"], _line_of(entry, key="steps") or line, shown, data)


def read_training_file(doc: Any, shown: str, data: NluData) -> list[Finding]:
    """``nlu:``, ``stories:`` and ``rules:`` of one file (Rasa reads any of them from any data file)."""
    found: list[Finding] = []
    if doc is None:
        return [Finding(shown, None, "empty file", error=False)]
    top = _mapping(doc, 1, "a training data file")
    if not any(k in top for k in ("nlu", "stories", "rules")):
        raise _Shape(1, "a training data file needs 'nlu:', 'stories:' or 'rules:'")
    if "nlu" in top:
        _read_nlu(top["nlu"], top, shown, data, found)
    for key in ("stories", "rules"):
        if key in top:
            _read_stories(key, top[key], top, shown, data)
    return found


def scan_actions(folder: Path, data: NluData, shown_root: Path | None = None) -> None:
    """Add the response names in ``folder``'s Python files to ``data``."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.py")):
        shown = _shown(path, shown_root)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for n, source_line in enumerate(text.splitlines(), start=1):
            for m in _CODE_RESPONSE.finditer(source_line):
                name = m.group("name")
                target = (
                    data.code_prefixes if name.endswith("_") or not m.group("closed") else data.code_responses
                )
                target[name].append(Where(shown, n))


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (".yml", ".yaml")
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_data(inputs: train.RasaInputs, actions: Path) -> tuple[NluData, list[Finding]]:
    """Read the domain, the training files and the action code; problems reading them are findings."""
    data = NluData()
    found: list[Finding] = []
    files: list[tuple[Path, bool]] = [(inputs.domain, True)]
    for folder in inputs.data_dirs:
        if not folder.is_dir():
            found.append(Finding(inputs.display(folder), None, "folder missing"))
        files += [(p, False) for p in _yaml_files(folder)]
    for path, is_domain in files:
        shown = inputs.display(path)
        if not path.is_file():
            found.append(Finding(shown, None, "file missing"))
            continue
        doc, problems = load_yaml(path, shown)
        found += problems
        if problems:
            continue
        try:
            if is_domain:
                read_domain(doc, shown, data)
            else:
                found += read_training_file(doc, shown, data)
        except _Shape as exc:
            found.append(Finding(shown, exc.line, exc.message))
        except Exception as exc:  # an editor's shape we did not foresee: still a message, not a traceback
            found.append(
                Finding(shown, None, f"could not be read as Rasa data ({type(exc).__name__}: {exc})")
            )
    found += faq_findings(inputs)
    scan_actions(actions, data, inputs.root)
    return data, found


FAQ_FILE = "faq.yml"
"""The frequently asked questions, beside ``domain.yml`` (optional: a data folder without one has no FAQ)."""


def faq_findings(inputs: train.RasaInputs) -> list[Finding]:
    """``faq.yml`` read as the bot reads it (:func:`actions.info.load_faq`): its first problem, if any."""
    path = inputs.data / FAQ_FILE
    if not path.is_file():
        return []
    from actions.shared.faq import FaqError, load_faq

    try:
        load_faq(path)
    except FaqError as exc:
        return [Finding(inputs.display(path), exc.line, exc.message)]
    return []


# --- the checks -----------------------------------------------------------------------------------------


def _base(intent: str) -> str:
    """Retrieval intents ``faq/hours`` belong to the domain's ``faq``."""
    return intent.split("/", 1)[0]


def check(data: NluData) -> list[Finding]:
    """Our own checks on data read without problems (see the module docstring)."""
    found: list[Finding] = []
    found += _duplicate_examples(data)
    found += _too_few_examples(data)
    found += _intent_coverage(data)
    found += _response_coverage(data)
    return found


def _duplicate_examples(data: NluData) -> list[Finding]:
    found: list[Finding] = []
    first: dict[tuple[str, str], Example] = {}
    by_key: dict[str, Example] = {}
    for ex in data.examples:
        if not ex.key:
            found.append(Finding(ex.where.path, ex.where.line, f"example {ex.text!r} has no words"))
            continue
        earlier = first.get((ex.intent, ex.key))
        if earlier is not None:
            found.append(
                Finding(
                    ex.where.path,
                    ex.where.line,
                    f"duplicate example {ex.text!r} in intent {ex.intent!r} (first at {earlier.where})",
                )
            )
            continue
        first[(ex.intent, ex.key)] = ex
        other = by_key.get(ex.key)
        if other is not None and other.intent != ex.intent:
            found.append(
                Finding(
                    ex.where.path,
                    ex.where.line,
                    f"example {ex.text!r} is under intent {ex.intent!r} here and under {other.intent!r} "
                    f"at {other.where}; keep it under one",
                )
            )
        by_key.setdefault(ex.key, ex)
    return found


def main_intents(data: NluData) -> set[str]:
    """Intents the stories and rules react to."""
    return set(data.story_intents)


def _too_few_examples(data: NluData) -> list[Finding]:
    found: list[Finding] = []
    main = main_intents(data)
    for intent, count in sorted(data.example_counts().items()):
        is_main = intent in main or _base(intent) in main
        need = MIN_EXAMPLES_MAIN if is_main else MIN_EXAMPLES_OTHER
        if count < need:
            where = data.intent_blocks.get(intent)
            kind = "used in stories or rules" if is_main else "not used in stories or rules"
            found.append(
                Finding(
                    where.path if where else "",
                    where.line if where else None,
                    f"intent {intent!r} has {count} distinct examples; intents {kind} need at least {need}",
                )
            )
    return found


def _intent_coverage(data: NluData) -> list[Finding]:
    found: list[Finding] = []
    with_examples = {_base(ex.intent) for ex in data.examples}
    for intent, where in data.domain_intents.items():
        if intent not in with_examples:
            found.append(
                Finding(where.path, where.line, f"intent {intent!r} is in the domain but has no examples")
            )
    declared = set(data.domain_intents) | RASA_DEFAULT_INTENTS
    reported: set[str] = set()
    for ex in data.examples:
        base = _base(ex.intent)
        if base not in declared and base not in reported:
            reported.add(base)
            found.append(
                Finding(
                    ex.where.path,
                    ex.where.line,
                    f"examples for intent {ex.intent!r}, which the domain does not declare "
                    "(add it under 'intents:')",
                )
            )
    for intent, places in data.story_intents.items():
        if _base(intent) not in declared:
            found += [
                Finding(w.path, w.line, f"intent {intent!r} is used here but the domain does not declare it")
                for w in places
            ]
    return found


def _response_coverage(data: NluData) -> list[Finding]:
    found: list[Finding] = []
    used: dict[str, list[Where]] = defaultdict(list)
    for name, places in data.story_actions.items():
        if name.startswith("utter_"):
            used[name] += places
    for name, where in data.domain_actions.items():
        if name.startswith("utter_"):
            used[name].append(where)
    for name, places in data.code_responses.items():
        used[name] += places
    for name, places in sorted(used.items()):
        if name not in data.responses:
            found += [
                Finding(w.path, w.line, f"response {name!r} is used here but the domain has no such response")
                for w in places
            ]
    for prefix, places in sorted(data.code_prefixes.items()):
        if not any(r.startswith(prefix) for r in data.responses):
            found += [
                Finding(
                    w.path, w.line, f"the code builds response names starting {prefix!r}; the domain has none"
                )
                for w in places
            ]
    asked = {f"utter_ask_{slot}" for slots in data.form_slots.values() for slot in slots}
    asked |= {f"utter_ask_{form}_{slot}" for form, slots in data.form_slots.items() for slot in slots}
    for name, where in data.responses.items():
        in_use = (
            name in used
            or name in asked
            or name in RASA_DEFAULT_RESPONSES
            or any(name.startswith(p) for p in data.code_prefixes)
        )
        if not in_use:
            found.append(
                Finding(
                    where.path,
                    where.line,
                    f"response {name!r} is not used by any story, rule, form or action",
                    error=False,
                )
            )
    return found


def rasa_findings(inputs: train.RasaInputs) -> list[Finding]:
    """Rasa's validator, exactly as ``make run`` applies it before training (:func:`bot.train.validate`)."""
    message = train.validate(inputs)
    if message is None:
        return []
    heading, *details = message.splitlines()
    lines = [d.strip() for d in details if d.strip()] or [heading]
    return [Finding("", None, f"{heading.rstrip(':')}: {line}") for line in lines]


def validate(
    inputs: train.RasaInputs, actions: Path, with_rasa: bool = True
) -> tuple[NluData, list[Finding]]:
    """All findings, sorted by file and line. Rasa's validator runs only if our own checks found no error."""
    data, found = read_data(inputs, actions)
    if not any(f.error for f in found):
        found += check(data)
    if with_rasa and not any(f.error for f in found):
        found += rasa_findings(inputs)
    return data, sorted(found, key=Finding.sort_key)


# --- cross-validation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts of (true intent, predicted intent); rows are true intents, columns add labels only predicted."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def pairs(self) -> list[tuple[str, str, int]]:
        """``(true, predicted, count)`` off the diagonal, most frequent first."""
        found = [
            (true, predicted, n)
            for true, row in zip(self.rows, self.counts, strict=True)
            for predicted, n in zip(self.columns, row, strict=True)
            if n and predicted != true
        ]
        return sorted(found, key=lambda p: (-p[2], p[0], p[1]))


def intents_of(report: Mapping[str, Any]) -> list[str]:
    """The intent rows of an ``intent_report.json`` (not its averages)."""
    return sorted(k for k, v in report.items() if k not in AVERAGE_KEYS and isinstance(v, Mapping))


def confusion_from_rasa(report: Mapping[str, Any], errors: Iterable[Mapping[str, Any]]) -> Confusion:
    """The full matrix from Rasa's report (support per intent) and ``intent_errors.json`` (every miss).

    Rasa's report keeps only the top three ``confused_with`` per intent, so the misses come from the errors
    file; the diagonal is support minus misses.
    """
    rows = intents_of(report)
    missed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for err in errors:
        prediction = err.get("intent_prediction") or {}
        predicted = str(prediction.get("name") or "(none)")
        missed[str(err.get("intent"))][predicted] += 1
    extra = sorted({p for row in missed.values() for p in row} - set(rows))
    columns = (*rows, *extra)
    counts = []
    for true in rows:
        support = int(report[true].get("support", 0))
        row = [missed[true].get(c, 0) for c in columns]
        row[rows.index(true)] = max(0, support - sum(row))
        counts.append(tuple(row))
    return Confusion(tuple(rows), columns, tuple(counts))


@dataclass(frozen=True, slots=True)
class CvResult:
    """What Rasa's cross-validation wrote, read back."""

    report: dict[str, Any]
    errors: list[dict[str, Any]]
    entity_report: dict[str, Any] | None
    seconds: float


class CvFailed(Exception):
    """Rasa's cross-validation did not produce a report; the message ends with its log's tail."""


def cross_validate(inputs: train.RasaInputs, folds: int, seed: int, log: Path) -> CvResult:
    """Run ``rasa test nlu --cross-validation``, Rasa's output going to ``log``, and read its reports."""
    with tempfile.TemporaryDirectory(prefix="nlucheck-") as tmp:
        out = Path(tmp) / "results"
        cmd = [
            sys.executable, "-c", _SEEDED_RASA, str(seed),
            "test", "nlu", "--cross-validation", "--folds", str(folds),
            "--config", str(inputs.config), "--nlu", str(inputs.data_dirs[0]),
            "--domain", str(inputs.domain), "--out", str(out), "--no-plot",
        ]  # fmt: skip
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as sink:
            done = subprocess.run(
                cmd, cwd=tmp, env=train._rasa_env(), stdout=sink, stderr=subprocess.STDOUT, check=False
            )
        seconds = time.monotonic() - started
        report_file = out / "intent_report.json"
        if done.returncode != 0 or not report_file.is_file():
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
            raise CvFailed(f"rasa test nlu exited {done.returncode} without a report; its log ends:\n{tail}")
        errors_file = out / "intent_errors.json"
        entity_file = out / "DIETClassifier_report.json"
        return CvResult(
            report=json.loads(report_file.read_text(encoding="utf-8")),
            errors=json.loads(errors_file.read_text(encoding="utf-8")) if errors_file.is_file() else [],
            entity_report=json.loads(entity_file.read_text(encoding="utf-8"))
            if entity_file.is_file()
            else None,
            seconds=seconds,
        )


# --- the report ---------------------------------------------------------------------------------------


def draw_confusion_matrix(confusion: Confusion, path: Path) -> None:
    """A PNG of the matrix: colour is the share of each true intent's examples, numbers are counts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(confusion.rows), len(confusion.columns)
    shares = [[n / (sum(row) or 1) for n in row] for row in confusion.counts]
    size = max(5.0, 0.55 * max(n_rows, n_cols) + 2.5)
    fig = Figure(figsize=(size * n_cols / max(n_rows, 1) if n_cols > n_rows else size, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares or [[0.0]], cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true intent's examples")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(confusion.columns, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(confusion.rows, fontsize=9)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title("Intent confusion matrix (cross-validation)")
    for i, row in enumerate(confusion.counts):
        for j, n in enumerate(row):
            if n:
                colour = "white" if shares[i][j] > 0.5 else "black"
                ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=colour)
    fig.tight_layout()
    fig.savefig(str(path), format="png")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How the figures were made, for the report's header."""

    data: str
    config: str
    folds: int
    seed: int
    seconds: float
    examples: int


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
tr.weak td { background: #fff1f0; }
tr.avg td { font-weight: 600; background: #f6f8fa; }
.big { font-size: 1.6em; font-weight: 700; }
.ok { color: #1a7f37; } .bad { color: #cf222e; }
code { background: #f6f8fa; padding: 0 0.25em; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _num(value: Any) -> str:
    return f"{float(value):.3f}" if isinstance(value, (int, float)) else "-"


def write_report(
    out_dir: Path,
    report: Mapping[str, Any],
    confusion: Confusion,
    findings: Sequence[Finding],
    run: RunInfo,
    errors: Sequence[Mapping[str, Any]] = (),
    entity_report: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``index.html`` and the confusion-matrix PNG into ``out_dir``; return the HTML file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    draw_confusion_matrix(confusion, out_dir / MATRIX_FILE)
    e = html.escape
    macro = report.get("macro avg", {})
    weighted = report.get("weighted avg", {})
    macro_f1 = float(macro.get("f1-score", 0.0))
    verdict = "ok" if macro_f1 >= TARGET_MACRO_F1 else "bad"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>NLU check</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>NLU check</h1>",
        f"<p>{e(when)} · data <code>{e(run.data)}</code> · config <code>{e(run.config)}</code> · "
        f"{run.examples} examples, {len(intents_of(report))} intents · {run.folds}-fold cross-validation "
        f"(seed {run.seed}) in {run.seconds:.0f} s</p>",
        f'<p>Macro F1 <span class="big {verdict}">{macro_f1:.3f}</span> (target {TARGET_MACRO_F1:.2f}) · '
        f"weighted F1 {_num(weighted.get('f1-score'))} · accuracy {_num(_accuracy(report))}</p>",
        "<h2>Per intent</h2>",
        f"<p>Weakest first. Rows below {TARGET_MACRO_F1:.2f} F1 are shaded.</p>",
        "<table><thead><tr><th>intent</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
        "</tr></thead><tbody>",
    ]
    rows = sorted(intents_of(report), key=lambda i: (float(report[i].get("f1-score", 0.0)), i))
    for intent in rows:
        r = report[intent]
        weak = ' class="weak"' if float(r.get("f1-score", 0.0)) < TARGET_MACRO_F1 else ""
        parts.append(
            f"<tr{weak}><td>{e(intent)}</td><td>{_num(r.get('precision'))}</td><td>{_num(r.get('recall'))}</td>"
            f"<td>{_num(r.get('f1-score'))}</td><td>{int(r.get('support', 0))}</td></tr>"
        )
    for label, avg in (("macro avg", macro), ("weighted avg", weighted)):
        parts.append(
            f'<tr class="avg"><td>{label}</td><td>{_num(avg.get("precision"))}</td>'
            f"<td>{_num(avg.get('recall'))}</td><td>{_num(avg.get('f1-score'))}</td>"
            f"<td>{int(avg.get('support', 0))}</td></tr>"
        )
    parts.append("</tbody></table>")

    parts += _confusions_html(confusion, errors)
    parts += [
        "<h2>Confusion matrix</h2>",
        f'<p><img src="{MATRIX_FILE}" alt="confusion matrix: true intents down, predicted across"></p>',
    ]
    if entity_report:
        parts += _entities_html(entity_report)
    parts.append("<h2>Validation</h2>")
    if findings:
        parts.append("<ul>" + "".join(f"<li><code>{e(str(f))}</code></li>" for f in findings) + "</ul>")
    else:
        parts.append("<p>No findings.</p>")
    parts.append("</body></html>\n")
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _accuracy(report: Mapping[str, Any]) -> Any:
    acc = report.get("accuracy")
    if acc is None and isinstance(report.get("micro avg"), Mapping):
        acc = report["micro avg"].get("f1-score")
    return acc


def _confusions_html(confusion: Confusion, errors: Sequence[Mapping[str, Any]]) -> list[str]:
    e = html.escape
    pairs = confusion.pairs()[:WORST_CONFUSIONS]
    parts = ["<h2>Worst confusions</h2>"]
    if not pairs:
        return [*parts, "<p>None: every example was predicted as its own intent.</p>"]
    phrases: dict[tuple[str, str], list[str]] = defaultdict(list)
    for err in errors:
        prediction = err.get("intent_prediction") or {}
        key = (str(err.get("intent")), str(prediction.get("name") or "(none)"))
        phrases[key].append(str(err.get("text", "")))
    parts.append(
        "<table><thead><tr><th>true intent</th><th>predicted as</th><th>examples</th><th>share</th>"
        '<th class="text">for instance</th></tr></thead><tbody>'
    )
    for true, predicted, n in pairs:
        total = sum(confusion.counts[confusion.rows.index(true)]) or 1
        said = "; ".join(f"“{e(t)}”" for t in phrases[(true, predicted)][:EXAMPLES_PER_CONFUSION])
        parts.append(
            f"<tr><td>{e(true)}</td><td>{e(predicted)}</td><td>{n}</td><td>{n / total:.0%}</td>"
            f'<td class="text">{said}</td></tr>'
        )
    parts.append("</tbody></table>")
    return parts


def _entities_html(entity_report: Mapping[str, Any]) -> list[str]:
    e = html.escape
    parts = [
        "<h2>Entities</h2>",
        "<table><thead><tr><th>entity</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
        "</tr></thead><tbody>",
    ]
    for name in intents_of(entity_report):
        r = entity_report[name]
        parts.append(
            f"<tr><td>{e(name)}</td><td>{_num(r.get('precision'))}</td><td>{_num(r.get('recall'))}</td>"
            f"<td>{_num(r.get('f1-score'))}</td><td>{int(r.get('support', 0))}</td></tr>"
        )
    parts.append("</tbody></table>")
    return parts


# --- command line -------------------------------------------------------------------------------------


def _print_findings(findings: Sequence[Finding]) -> None:
    for f in findings:
        print(f, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.nlucheck", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the editors' folder (default: nlu-data)")
    parser.add_argument(
        "--config", type=Path, default=None, help="Rasa config (default: bot/rasa/config.yml)"
    )
    parser.add_argument(
        "--actions",
        type=Path,
        default=None,
        help="action code scanned for response names (default: DATA/../actions)",
    )
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help=f"folds (default {DEFAULT_FOLDS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the fold split")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/nlu)")
    parser.add_argument("--no-cv", action="store_true", help="validate only (fast)")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    root = train.REPO_ROOT
    inputs = train.RasaInputs(
        root,
        data_root=args.data.resolve() if args.data else None,
        config_file=args.config.resolve() if args.config else None,
    )
    actions = args.actions.resolve() if args.actions else inputs.data.parent / "actions"
    out_dir = (args.out or root / "reports" / "nlu").resolve()

    print(f"Checking {inputs.display(inputs.data)} ...", flush=True)
    data, findings = validate(inputs, actions)
    _print_findings(findings)
    errors = [f for f in findings if f.error]
    warnings = len(findings) - len(errors)
    if errors:
        print(
            f"{len(errors)} problem(s), {warnings} warning(s): fix the data and run again"
            + ("" if args.no_cv else " (no cross-validation on invalid data)")
            + ".",
            file=sys.stderr,
        )
        return 1
    counts = data.example_counts()
    print(f"Data valid: {len(counts)} intents, {sum(counts.values())} examples, {warnings} warning(s).")
    if args.no_cv:
        return 0

    log = out_dir / "rasa-cv.log"
    print(
        f"Cross-validating ({args.folds} folds: {args.folds} NLU models trained; minutes, not seconds). "
        f"Rasa's log: {inputs.display(log)}",
        flush=True,
    )
    try:
        result = cross_validate(inputs, args.folds, args.seed, log)
    except CvFailed as exc:
        print(str(exc), file=sys.stderr)
        return 2
    confusion = confusion_from_rasa(result.report, result.errors)
    run = RunInfo(
        data=inputs.display(inputs.data),
        config=inputs.display(inputs.config),
        folds=args.folds,
        seed=args.seed,
        seconds=result.seconds,
        examples=sum(counts.values()),
    )
    path = write_report(out_dir, result.report, confusion, findings, run, result.errors, result.entity_report)
    for name, payload in (("intent_report.json", result.report), ("intent_errors.json", result.errors)):
        (out_dir / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    macro_f1 = float(result.report.get("macro avg", {}).get("f1-score", 0.0))
    weakest = sorted(intents_of(result.report), key=lambda i: float(result.report[i].get("f1-score", 0.0)))[
        :3
    ]
    print(
        "Weakest intents: "
        + ", ".join(f"{i} {float(result.report[i].get('f1-score', 0.0)):.3f}" for i in weakest)
    )
    print(f"Cross-validation took {result.seconds:.0f} s.")
    print(f"Macro F1 {macro_f1:.3f} (target {TARGET_MACRO_F1:.2f})")
    print(f"Report: {inputs.display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
