"""The frequently asked questions: ``nlu-data/faq.yml`` read, validated and matched to what a caller said.

:func:`load_faq` reads the editors' file and validates it; any problem is a :class:`FaqError` naming the file
and line (the editor check, ``make nlu-check``, reports it the same way). :meth:`Faq.answer` picks the entry
whose questions are closest to what the caller said (TF-IDF over words and character n-grams, cosine
similarity), or ``None`` when nothing is close enough. The answers are the editors' own words, said as they
are written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actions.shared.speech import FILLERS
from actions.shared.yamlfile import YamlFileError, read_yaml

MIN_QUESTIONS = 3
"""Fewest phrasings per entry."""
MAX_ANSWER_CHARS = 200
MAX_ANSWER_SENTENCES = 2
MATCH_THRESHOLD = 0.35
"""Lowest similarity (0-1, the mean of word and character cosine) that counts as an answer."""

_FIELDS = ("id", "questions", "answer")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)")
_SPOKEN_TEXT = re.compile(r"^[A-Za-z ,.;:!?'\-]+$")
_WORDS = re.compile(r"[a-z]+|[0-9]+")

STOP_WORDS = FILLERS | frozenset(
    """i im me my mine you your we our us it its is are was am be been do does did done to of for on in at
    this that these those what whats how can could would will please tell know want wanna need id ill
    hi hello hey yeah yes okay ok just actually basically there theres about with if any some
    question ask asking wondering""".split()
)
"""Words that say nothing about which question it is: fillers, pronouns, auxiliaries, politeness."""


class FaqError(ValueError):
    """``faq.yml`` is not valid YAML or has the wrong shape; ``str()`` is ``file:line: problem``."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")


@dataclass(frozen=True, slots=True)
class FaqEntry:
    """One topic: how callers ask it and what the bot says."""

    id: str
    questions: tuple[str, ...]
    answer: str
    line: int = 0
    """1-based line of the entry in its file (0 when built in code)."""


def normalise_question(text: str) -> str:
    """What the matcher compares: lower case, words only, no fillers or other words that carry nothing."""
    words = _WORDS.findall(text.lower().replace("'", ""))
    return " ".join(w for w in words if w not in STOP_WORDS)


class Faq:
    """The validated FAQ and its matcher (built once; :meth:`answer` is a few sparse dot products)."""

    def __init__(self, entries: Sequence[FaqEntry], threshold: float = MATCH_THRESHOLD) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not entries:
            raise ValueError("a FAQ needs at least one entry")
        self.entries = tuple(entries)
        self.threshold = threshold
        self._owner: list[int] = []
        texts: list[str] = []
        for i, entry in enumerate(self.entries):
            for q in entry.questions:
                texts.append(normalise_question(q) or q.lower())
                self._owner.append(i)
        self._vectorizers = (
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
        )
        self._matrices = [v.fit_transform(texts) for v in self._vectorizers]

    def scores(self, text: str) -> list[float]:
        """Similarity of ``text`` to each entry (its best-matching question), in entry order."""
        query = normalise_question(text)
        best = [0.0] * len(self.entries)
        if not query:
            return best
        total: Any = None
        for vectorizer, matrix in zip(self._vectorizers, self._matrices, strict=True):
            sims = matrix @ vectorizer.transform([query]).T  # rows are L2-normalised: cosine
            total = sims if total is None else total + sims
        dense = total.toarray().ravel() / len(self._vectorizers)
        for row, score in enumerate(dense):
            owner = self._owner[row]
            best[owner] = max(best[owner], float(score))
        return best

    def match(self, text: str) -> tuple[FaqEntry, float] | None:
        """The best entry and its score, or ``None`` below the threshold."""
        scores = self.scores(text)
        i = max(range(len(scores)), key=scores.__getitem__)
        return (self.entries[i], scores[i]) if scores[i] >= self.threshold else None

    def answer(self, text: str) -> FaqEntry | None:
        """The entry whose questions best match what the caller said; ``None`` when nothing is close."""
        found = self.match(text)
        return found[0] if found else None

    def get(self, entry_id: str) -> FaqEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "'key: value' lines"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = str(node.value)
    return f"the text {value[:40]!r}" if value else "nothing"


def _text(node: yaml.Node, path: Path, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise FaqError(path, _line(node), f"{what} should be some text, found {_kind(node)}")
    return " ".join(str(node.value).split())


def _check_answer(answer: str, path: Path, line: int, entry_id: str) -> None:
    sentences = [s for s in _SENTENCE_END.split(answer) if s.strip()]
    if len(sentences) > MAX_ANSWER_SENTENCES:
        raise FaqError(
            path,
            line,
            f"the answer of {entry_id!r} has {len(sentences)} sentences; keep it to two short ones",
        )
    if len(answer) > MAX_ANSWER_CHARS:
        raise FaqError(
            path,
            line,
            f"the answer of {entry_id!r} is {len(answer)} characters long; keep it under {MAX_ANSWER_CHARS}",
        )
    if not _SPOKEN_TEXT.match(answer):
        odd = sorted({c for c in answer if not _SPOKEN_TEXT.match(c)})
        raise FaqError(
            path,
            line,
            f"the answer of {entry_id!r} contains {' '.join(odd)}: write it as spoken, numbers and money in "
            "words, no symbols or web addresses",
        )


def _entry(node: yaml.Node, path: Path) -> tuple[FaqEntry, list[int]]:
    """One entry and the line of each of its questions."""
    line = _line(node)
    if not isinstance(node, yaml.MappingNode):
        raise FaqError(
            path, line, f"an entry should be 'id:', 'questions:' and 'answer:' lines, found {_kind(node)}"
        )
    fields: dict[str, yaml.Node] = {}
    key_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key not in _FIELDS:
            raise FaqError(path, _line(key_node), f"unknown key {key!r} (an entry has id, questions, answer)")
        fields[key] = value_node
        key_lines[key] = _line(key_node)
    for key in _FIELDS:
        if key not in fields:
            raise FaqError(path, line, f"the entry has no '{key}:'")
    entry_id = _text(fields["id"], path, "'id:'")
    listed = fields["questions"]
    if not isinstance(listed, yaml.SequenceNode):
        raise FaqError(
            path, _line(listed), f"'questions:' should be a list of '- ' lines, found {_kind(listed)}"
        )
    questions = tuple(_text(q, path, "a question").lower() for q in listed.value)
    if len(questions) < MIN_QUESTIONS:
        raise FaqError(
            path,
            key_lines["questions"],
            f"{entry_id!r} has {len(questions)} question(s); give at least {MIN_QUESTIONS} ways to ask it",
        )
    answer = _text(fields["answer"], path, "'answer:'")
    _check_answer(answer, path, _line(fields["answer"]), entry_id)
    return FaqEntry(entry_id, questions, answer, line), [_line(q) for q in listed.value]


def _compose(path: Path) -> yaml.Node | None:
    try:
        read_yaml(path)  # syntax errors, reported the project's way (file:line)
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except FileNotFoundError as exc:
        raise FaqError(path, None, "file missing") from exc
    except UnicodeDecodeError as exc:
        raise FaqError(path, None, "not UTF-8 text (save the file as UTF-8)") from exc
    except YamlFileError as exc:
        found = re.match(rf"{re.escape(str(path))}(?::(\d+))?: (.*)", str(exc), re.S)
        if found is None:
            raise FaqError(path, None, str(exc)) from exc
        raise FaqError(path, int(found[1]) if found[1] else None, found[2]) from exc


def load_faq(path: Path) -> Faq:
    """Read and validate ``path`` (see ``nlu-data/faq.yml`` for the format); :class:`FaqError` if wrong."""
    root = _compose(path)
    if root is None:
        raise FaqError(path, None, "the file is empty; it should be a list of '- id: ...' entries")
    if not isinstance(root, yaml.SequenceNode):
        raise FaqError(
            path, _line(root), f"the file should be a list of '- id: ...' entries, found {_kind(root)}"
        )
    if not root.value:
        raise FaqError(path, _line(root), "the file has no entries")
    entries: list[FaqEntry] = []
    ids: dict[str, int] = {}
    asked: dict[str, tuple[str, int]] = {}
    for node in root.value:
        entry, lines = _entry(node, path)
        if entry.id in ids:
            raise FaqError(path, entry.line, f"id {entry.id!r} is used twice (first at line {ids[entry.id]})")
        ids[entry.id] = entry.line
        for question, q_line in zip(entry.questions, lines, strict=True):
            key = " ".join(_WORDS.findall(question.replace("'", "")))
            if key in asked:
                other, other_line = asked[key]
                where = (
                    f"twice in {entry.id!r} (first at line {other_line})"
                    if other == entry.id
                    else f"in both {other!r} (line {other_line}) and {entry.id!r}; keep it under one"
                )
                raise FaqError(path, q_line, f"the question {question!r} is {where}")
            asked[key] = (entry.id, q_line)
        entries.append(entry)
    return Faq(entries)
