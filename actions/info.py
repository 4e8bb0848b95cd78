"""The information line: frequently asked questions, opening hours and branch addresses, said aloud.

Pure logic (no Rasa): the actions call these with what the caller said and the store's branches.

- :func:`load_faq` reads ``nlu-data/faq.yml`` (the editors' questions and answers) and validates it; any
  problem is a :class:`FaqError` naming the file and line. :meth:`Faq.answer` picks the entry whose
  questions are closest to what the caller said (TF-IDF over words and character n-grams, cosine
  similarity), or ``None`` when nothing is close enough.
- :func:`hours_reply` answers an opening-hours question ("are you open now", "downtown on saturday", "what
  are your hours") in at most two short sentences; :func:`branch_reply` answers "where are you".

Everything returned is meant to be spoken: times as words ("five thirty p m"), no digits, no symbols.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from actions.backends.base import Branch, OpeningHours
from actions.shared.yamlfile import YamlFileError, read_yaml
from actions.speech import FILLERS, number_words

# --- the FAQ file ---------------------------------------------------------------------------------------

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


# --- spoken times and places ----------------------------------------------------------------------------

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_WORDS = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    name.lower() + "s": i for i, name in enumerate(DAY_NAMES)
}
_NOW_WORDS = frozenset({"now", "currently", "moment", "still"})
_STREET_TYPES = frozenset(
    {"street", "st", "road", "rd", "avenue", "ave", "lane", "drive", "boulevard", "way"}
)
_NEAREST_WORDS = frozenset({"nearest", "closest", "near", "nearby", "close"})


def _say_time(t: time) -> str:
    """A clock time as the voice should say it: "nine a m", "five thirty p m", "noon", "midnight"."""
    if t.minute == 0 and t.hour in (0, 12):
        return "midnight" if t.hour == 0 else "noon"
    hour = t.hour % 12 or 12
    if t.minute == 0:
        minutes = ""
    elif t.minute < 10:
        minutes = " oh " + number_words(t.minute)
    else:
        minutes = " " + number_words(t.minute)
    return f"{number_words(hour)}{minutes} {'a m' if t.hour < 12 else 'p m'}"


def _span(h: OpeningHours) -> str:
    return f"{_say_time(h.opens)} to {_say_time(h.closes)}"


def _words(text: str) -> list[str]:
    """Lower-case words and digit runs, spoken digits ("six two seven") joined into digit runs."""
    from actions.speech import digits_from_speech

    out: list[str] = []
    for tok in _WORDS.findall(text.lower().replace("'", "")):
        spoken_zero = tok in ("o", "oh") and bool(out) and out[-1].isdigit()
        digit = "0" if spoken_zero else digits_from_speech(tok) if tok not in ("o", "oh") else None
        if digit is not None and out and out[-1].isdigit() and len(digit) == 1 and len(out[-1]) < 5:
            out[-1] += digit
        elif digit is not None and (tok.isdigit() or len(digit) == 1):
            out.append(digit)
        else:
            out.append(tok)
    return out


def _street(address: str) -> str:
    """ "100 Main Street" -> "main street" (the part callers say)."""
    words = [w for w in _WORDS.findall(address.lower()) if not w.isdigit()]
    return " ".join(words)


def _street_name(address: str) -> str:
    """ "100 Main Street" -> "main" (without the number and the kind of street)."""
    return " ".join(w for w in _street(address).split() if w not in _STREET_TYPES)


def _named(branches: Sequence[Branch], text: str) -> list[Branch]:
    """The branches ``text`` names: by name, city, street or postcode (spoken digits count)."""
    words = _words(text)
    joined = f" {' '.join(words)} "
    found: list[Branch] = []
    for b in branches:
        names = {b.name.lower(), b.city.lower(), _street(b.address), b.branch_id.lower().replace("-", " ")}
        street = _street_name(b.address)
        if street and len(street) > 3:
            names |= {f"{street} {kind}" for kind in _STREET_TYPES}
        if any(f" {n} " in joined for n in names if n) or b.postcode in words:
            found.append(b)
    return found


def _nearest_by_postcode(branches: Sequence[Branch], text: str) -> Branch | None:
    """The branch whose postcode shares the longest prefix (three digits or more) with one said."""
    codes = [w for w in _words(text) if w.isdigit() and len(w) == 5]
    best: tuple[int, Branch] | None = None
    for code in codes:
        for b in branches:
            common = len(_common_prefix(code, b.postcode))
            if common >= 3 and (best is None or common > best[0]):
                best = (common, b)
    return best[1] if best else None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _address(b: Branch) -> str:
    words = []
    for w in b.address.split():
        words.append(number_words(int(w)) if w.isdigit() and len(w) < 6 else w)
    return f"{b.name} is at {' '.join(words)} in {b.city}."


def branch_reply(branches: Sequence[Branch], text: str) -> str:
    """Where the branches are: the one the caller names (or is nearest to the place named), else all."""
    if not branches:
        return "I'm sorry, I can't look up our branches right now."
    chosen = _named(branches, text)
    if not chosen and _NEAREST_WORDS & set(_words(text)):
        nearest = _nearest_by_postcode(branches, text)
        chosen = [nearest] if nearest else []
    return " ".join(_address(b) for b in (chosen or branches))


def _day_asked(text: str, now: datetime) -> tuple[str, int] | None:
    """("now" | "today" | "tomorrow" | "weekday", weekday) when the caller asks about one day."""
    words = _words(text)
    for w in words:
        if w in _DAY_WORDS:
            return "weekday", _DAY_WORDS[w]
    if "tomorrow" in words:
        return "tomorrow", (now.weekday() + 1) % 7
    if "today" in words or "tonight" in words:
        return "today", now.weekday()
    if _NOW_WORDS & set(words) or " right now" in f" {' '.join(words)}":
        return "now", now.weekday()
    return None


def _next_opening(b: Branch, after: datetime) -> tuple[int, OpeningHours] | None:
    """(days ahead, hours) of the next opening strictly after ``after``; ``None`` if never open."""
    for ahead in range(8):
        day = after + timedelta(days=ahead)
        h = b.hours_on(day.weekday())
        if h is not None and (ahead > 0 or after.time() < h.opens):
            return ahead, h
    return None


def _when(ahead: int, weekday: int) -> str:
    return "today" if ahead == 0 else "tomorrow" if ahead == 1 else f"on {DAY_NAMES[weekday]}"


def _now_sentence(b: Branch, now: datetime) -> str:
    h = b.hours_on(now.weekday())
    if b.is_open(now) and h is not None:
        return f"{b.name} is open now until {_say_time(h.closes)}."
    nxt = _next_opening(b, now)
    if nxt is None:
        return f"{b.name} is closed now."
    ahead, hours = nxt
    return (
        f"{b.name} is closed now and opens {_when(ahead, (now.weekday() + ahead) % 7)} "
        f"at {_say_time(hours.opens)}."
    )


def _day_sentence(b: Branch, kind: str, weekday: int) -> str:
    h = b.hours_on(weekday)
    when = {"today": "today", "tomorrow": "tomorrow"}.get(kind, f"on {DAY_NAMES[weekday]}s")
    if h is None:
        return f"{b.name} is closed {when}."
    return f"{b.name} is open {when} from {_span(h)}."


def _week_sentence(b: Branch) -> str:
    """ "Downtown is open Monday to Friday nine a m to five thirty p m, and Saturday ten a m to two p m." """
    groups: list[tuple[int, int, OpeningHours]] = []
    for day in range(7):
        h = b.hours_on(day)
        if h is None:
            continue
        prev = groups[-1] if groups else None
        if prev and prev[1] == day - 1 and (prev[2].opens, prev[2].closes) == (h.opens, h.closes):
            groups[-1] = (groups[-1][0], day, groups[-1][2])
        else:
            groups.append((day, day, h))
    if not groups:
        return f"{b.name} is closed all week."
    parts = []
    for first, last, h in groups:
        days = (
            DAY_NAMES[first]
            if first == last
            else f"{DAY_NAMES[first]} {'and' if last == first + 1 else 'to'} {DAY_NAMES[last]}"
        )
        parts.append(f"{days} {_span(h)}")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return f"{b.name} is open {listed}."


def hours_reply(branches: Sequence[Branch], text: str, now: datetime) -> str:
    """Opening hours for the branch the caller names (else every branch), for the day asked about (else the
    week): one short sentence per branch."""
    if not branches:
        return "I'm sorry, I can't look up our opening hours right now."
    chosen = _named(branches, text) or list(branches)
    asked = _day_asked(text, now)
    if asked is None:
        return " ".join(_week_sentence(b) for b in chosen)
    kind, weekday = asked
    if kind == "now":
        return " ".join(_now_sentence(b, now) for b in chosen)
    if len(chosen) > 1 and all(b.hours_on(weekday) is None for b in chosen):
        when = {"today": "today", "tomorrow": "tomorrow"}.get(kind, f"on {DAY_NAMES[weekday]}s")
        return f"{'Both' if len(chosen) == 2 else 'All our'} branches are closed {when}."
    return " ".join(_day_sentence(b, kind, weekday) for b in chosen)
