"""What the editors' check reads, and where it saw each name: the domain, the training files, the code.

:func:`read_data` reads ``domain.yml`` and every file under ``nlu/`` and ``stories/`` as Rasa does
(:mod:`bot.tools.rasayaml`), ``faq.yml`` and ``prompts.yml`` as the bot does, and scans Python code for the
response names it uses. Everything it collects carries a :class:`Where` (file and line), so the checks in
:mod:`.checks` can say where a problem is. A file that cannot be read is a :class:`Finding`, never a
traceback: YAML an editor broke (syntax, or the wrong shape: a list where keys belong, examples not
starting ``-``) is reported at its line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actions.shared.faq import FaqError, load_faq
from bot.prompts import Prompts, PromptsError
from bot.tools import rasayaml
from bot.tools.rasayaml import line_of, value_line
from bot.tools.train import RasaInputs

FAQ_FILE = "faq.yml"
"""The frequently asked questions, beside ``domain.yml`` (optional: a data folder without one has no FAQ)."""
PROMPTS_FILE = "prompts.yml"
"""The gateway's own phrases and keypad menu, beside ``domain.yml`` (the gateway will not start without
it; a data folder without one, like the small trees the tests write, is checked without it)."""

_ENTITY = re.compile(r"\[(?P<text>[^\]]+?)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_CODE_RESPONSE = re.compile(r"""(?P<q>["'])(?P<name>utter_[a-z0-9_]*)(?P<closed>(?P=q))?""")
_LOCATED = re.compile(r"(?::(?P<line>\d+))?: (?P<message>.*)", re.S)


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
    """What the checks need from ``nlu-data/`` and the code, each name with where it was seen."""

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
    keypad: dict[str, str] = field(default_factory=dict)
    """``prompts.yml``'s keypad menu (key to intent), when the file is there and valid."""
    keypad_file: str = ""

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


# --- the shape Rasa expects -------------------------------------------------------------------------------


class _Shape(Exception):
    """The YAML parsed but has the wrong shape for Rasa; carries the line."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


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


# --- the domain -------------------------------------------------------------------------------------------


def read_domain(doc: Any, shown: str, data: NluData) -> None:
    """Intents, responses, actions and forms of ``domain.yml``."""
    top = _mapping(doc, 1, "domain.yml")
    if "intents" in top:
        intents = _sequence(top["intents"], value_line(top, "intents"), "'intents:'")
        for i, item in enumerate(intents):
            line = line_of(intents, index=i) or line_of(top, "intents")
            if isinstance(item, Mapping):  # - greet: {use_entities: [...]}
                if len(item) != 1:
                    raise _Shape(line, "an intent with settings should be a single 'name: {...}' item")
                item = next(iter(item))
            data.domain_intents.setdefault(_name(item, line, "an intent"), Where(shown, line or 0))
    if "responses" in top:
        responses = _mapping(top["responses"], line_of(top, "responses"), "'responses:'")
        for name, variants in responses.items():
            line = line_of(responses, key=name)
            name = _name(name, line, "a response")
            _sequence(variants, line, f"response {name!r}")
            data.responses[name] = Where(shown, line or 0)
    if "actions" in top:
        actions = _sequence(top["actions"], value_line(top, "actions"), "'actions:'")
        for i, item in enumerate(actions):
            line = line_of(actions, index=i)
            if isinstance(item, Mapping) and len(item) == 1:  # - action_x: {send_domain: true}
                item = next(iter(item))
            data.domain_actions.setdefault(_name(item, line, "an action"), Where(shown, line or 0))
    if "forms" in top:
        forms = _mapping(top["forms"], line_of(top, "forms"), "'forms:'")
        for form, spec in forms.items():
            line = line_of(forms, key=form)
            form = _name(form, line, "a form")
            slots: list[str] = []
            if isinstance(spec, Mapping) and "required_slots" in spec:
                required = spec["required_slots"]
                slots = [str(s) for s in (required if isinstance(required, (list, Mapping)) else [])]
            data.form_slots[form] = slots


# --- training files: nlu, stories, rules -----------------------------------------------------------------


def _example_lines(block: str, block_line: int | None) -> Iterator[tuple[str, int | None, bool]]:
    """``(example, line, well_formed)`` for each non-blank line of an ``examples:`` text.

    In a ``|`` block (what editors write) each line is its own file line, starting below the ``|``; any other
    kind of text is attributed to the ``examples:`` line.
    """
    literal = rasayaml.is_block(block) and block_line is not None
    for offset, raw in enumerate(block.splitlines()):
        if not raw.strip():
            continue
        line = block_line + 1 + offset if literal and block_line is not None else block_line
        if not raw.startswith("-"):
            yield raw.strip(), line, False
        else:
            yield raw[1:].strip(), line, True


def _read_nlu(items: Any, top: Mapping[Any, Any], shown: str, data: NluData, found: list[Finding]) -> None:
    entries = _sequence(items, value_line(top, "nlu"), "'nlu:'")
    for i, entry in enumerate(entries):
        line = line_of(entries, index=i)
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
            for text, ex_line, well_formed in _example_lines(block, value_line(entry, "examples")):
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
                ex_line = line_of(block, index=j) or line
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
        step_line = line_of(steps, index=i) or line or 0
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
    entries = _sequence(items, value_line(top, key), f"'{key}:'")
    for i, entry in enumerate(entries):
        line = line_of(entries, index=i)
        entry = _mapping(entry, line, f"a '{key}:' item")
        if "steps" in entry:
            _read_steps(entry["steps"], line_of(entry, key="steps") or line, shown, data)


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


# --- code ---------------------------------------------------------------------------------------------------


def scan_code(folder: Path, data: NluData, shown_root: Path | None = None) -> None:
    """Add the response names in the Python files under ``folder`` (all the way down) to ``data``.

    A quoted ``"utter_x"`` is a response the code says; a quoted name that ends in ``_`` or is not closed on
    the line (``f"utter_handoff_{reason}"``) is a prefix some response must start with.
    """
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


# --- the files the bot reads itself --------------------------------------------------------------------


def faq_findings(inputs: RasaInputs) -> list[Finding]:
    """``faq.yml`` read as the bot reads it (:func:`actions.info.load_faq`): its first problem, if any."""
    path = inputs.data / FAQ_FILE
    if not path.is_file():
        return []
    try:
        load_faq(path)
    except FaqError as exc:
        return [Finding(inputs.display(path), exc.line, exc.message)]
    return []


def read_prompts(inputs: RasaInputs, data: NluData) -> list[Finding]:
    """``prompts.yml`` read as the gateway reads it at start-up (:meth:`bot.prompts.Prompts.load`).

    That covers every key in :data:`bot.prompts.REQUIRED` and the keypad menu's form; the keypad's intents
    go into ``data`` for :mod:`.checks` to hold against the domain.
    """
    path = inputs.data / PROMPTS_FILE
    if not path.is_file():
        return []
    shown = inputs.display(path)
    try:
        prompts = Prompts.load(path)
    except PromptsError as exc:  # "path[:line]: message", as the project's YAML reader words it
        text = str(exc)
        located = _LOCATED.fullmatch(text[len(str(path)) :]) if text.startswith(str(path)) else None
        if located is None:
            return [Finding(shown, None, text)]
        return [Finding(shown, int(located["line"]) if located["line"] else None, located["message"])]
    except UnicodeDecodeError:
        return [Finding(shown, None, "not UTF-8 text (save the file as UTF-8)")]
    data.keypad = dict(prompts.keypad)
    data.keypad_file = shown
    return []


# --- everything ---------------------------------------------------------------------------------------------


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


def read_data(inputs: RasaInputs, code: Sequence[Path]) -> tuple[NluData, list[Finding]]:
    """Read the domain, the training files, the bot's own files and the code in the ``code`` folders.

    Problems reading them are findings.
    """
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
        try:
            doc = rasayaml.load(path)
        except rasayaml.NotUtf8 as exc:
            found.append(Finding(shown, exc.line, exc.problem))
            continue
        except rasayaml.RasaYamlError as exc:
            column = f" (column {exc.column})" if exc.column is not None else ""
            found.append(Finding(shown, exc.line, f"YAML error{column}: {exc.problem}"))
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
    found += read_prompts(inputs, data)
    for folder in code:
        scan_code(folder, data, inputs.root)
    return data, found
