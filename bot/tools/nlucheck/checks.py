"""The editors' checks: each problem in ``nlu-data/`` as ``file:line: message``, before Rasa's own validator.

On what :mod:`.data` read (reading problems are findings already: broken YAML, the wrong shape, ``faq.yml``
as :func:`actions.info.load_faq` reads it, ``prompts.yml`` as the gateway reads it, which includes every
prompt in :data:`bot.prompts.REQUIRED`):

- the same example (lower case, spacing and punctuation ignored) under two intents, or twice in one;
- too few examples: :data:`MIN_EXAMPLES_MAIN` for intents the stories and rules use,
  :data:`MIN_EXAMPLES_OTHER` for the rest;
- responses used in stories, rules, forms or code but missing from the domain, and (a warning only)
  responses in the domain nothing uses. The code is every ``*.py`` under ``actions/`` and ``bot/rasa/`` (the
  Rasa channel plugin), all the way down: :func:`code_folders`;
- intents in the domain without examples, examples or stories for intents the domain does not declare, and
  keypad keys in ``prompts.yml`` that start an intent the domain does not declare.

Then, if those pass, Rasa's own validator through :func:`bot.tools.train.validate` (the check ``make run``
does before training; it also catches story conflicts). Its messages name no lines, ours do, which is why
ours run first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bot.tools import train
from bot.tools.nlucheck.data import Example, Finding, NluData, Where, read_data
from bot.tools.train import RasaInputs

MIN_EXAMPLES_MAIN = 25
"""Fewest examples for an intent the stories or rules react to."""
MIN_EXAMPLES_OTHER = 10
"""Fewest examples for any other intent."""

RASA_DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start", "nlu_fallback"})
"""Intents Rasa adds to every domain (``rasa.shared.core.constants.DEFAULT_INTENTS``; Rasa not imported)."""
RASA_DEFAULT_RESPONSES = frozenset({"utter_default", "utter_ask_rephrase"})
"""Responses Rasa's built-in fallback actions say when they exist: never reported as unused."""

CODE_FOLDERS = ("actions", "bot/rasa")
"""Where code that names responses lives, relative to the folder above the data folder."""


def code_folders(inputs: RasaInputs, actions: Path | None = None) -> tuple[Path, ...]:
    """The folders scanned for response names: ``actions/`` (or ``actions`` if given) and ``bot/rasa/``.

    Beside the data folder rather than in the checkout, so a copy of the project is checked as a whole.
    """
    base = inputs.data.parent
    found = [base / folder for folder in CODE_FOLDERS]
    if actions is not None:
        found[0] = actions
    return tuple(found)


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
    found += _keypad_intents(data)
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


def _keypad_intents(data: NluData) -> list[Finding]:
    declared = set(data.domain_intents) | RASA_DEFAULT_INTENTS
    return [
        Finding(
            data.keypad_file,
            None,
            f"keypad key {key!r} starts intent {intent!r}, which the domain does not declare",
        )
        for key, intent in sorted(data.keypad.items())
        if intent not in declared
    ]


def rasa_findings(inputs: RasaInputs) -> list[Finding]:
    """Rasa's validator, exactly as ``make run`` applies it before training (:func:`.train.validate`)."""
    message = train.validate(inputs)
    if message is None:
        return []
    heading, *details = message.splitlines()
    lines = [d.strip() for d in details if d.strip()] or [heading]
    return [Finding("", None, f"{heading.rstrip(':')}: {line}") for line in lines]


def validate(
    inputs: RasaInputs, code: Path | Sequence[Path], with_rasa: bool = True
) -> tuple[NluData, list[Finding]]:
    """All findings, sorted by file and line. Rasa's validator runs only if our own checks found no error.

    ``code`` is the folder (or folders: :func:`code_folders`) whose Python files name responses.
    """
    data, found = read_data(inputs, (code,) if isinstance(code, Path) else code)
    if not any(f.error for f in found):
        found += check(data)
    if with_rasa and not any(f.error for f in found):
        found += rasa_findings(inputs)
    return data, sorted(found, key=Finding.sort_key)
