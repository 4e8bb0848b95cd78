"""Card numbers, security codes, PINs and dates of birth found in a caller's words, and masked.

The one detector and masker: the Rasa channel masks every caller turn before Rasa records it (tracker, the
entities, slots, and so the incident text and the handoff context), the gateway masks what it writes into
its own transcript, and the handoff payload masks again what it carries. Pure functions (the caller may pass
``today``), words as the recogniser writes them ("four one one one ...", "oh" for zero) or digits as typed.

What is found, and what replaces it (the rest of the sentence is kept, so it still reads and still
classifies: "my card number is [card] and my cvv is [cvv]"):

==============  =========================================================================  ===============
``[card]``      13-19 digits (spoken or typed, in groups, with spaces or dashes) passing the     whole number,
                Luhn check, first digit 2-9 (no card network starts with 0 or 1; phone numbers  no last four
                do), not written after ``+`` (an international phone number)
``[cvv]``       digits after "cvv", "cvc", "cv2", "c v v", "security code", "verification code"
``[pin]``       digits after "pin", "passcode", "password"; and a bare run of 4-6 digits that is
                the whole turn ("4719", "uh it's four seven one nine") unless the turn answers
                a question whose answer is digits (``bare_digits_are_pin=False``)
``[date]``      a whole date with a year from 1800 to ``today`` ("12/10/1815", "1815-12-10",
                "the fifth of march nineteen eighty", "december tenth eighteen fifteen",
                "twelve ten nineteen ninety"); a date without a year ("march fifth") only after
                "born", "birthday", "birth", "dob"
``[digits]``    with ``keyed=True`` (keypad input nobody asked for), any other run of 3+ digits
==============  =========================================================================  ===============

Left alone: order and ticket numbers (6 digits inside a sentence), phone numbers ("+1 555 010 0001",
"555 010 0001"), postcodes, times, amounts, dates without a year (appointments: "march fifth at ten").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from actions.shared.dob import parse_dob
from actions.shared.numerals import (
    DIGIT_WORDS,
    MONTHS,
    TENS_VALUES,
    UNITS,
    number_at,
    spoken_year,
)

CARD = "[card]"
CVV = "[cvv]"
PIN = "[pin]"
DATE = "[date]"
DIGITS = "[digits]"
MASKS = (CARD, CVV, PIN, DATE, DIGITS)
"""Every mask this module writes."""

_TOKEN = re.compile(r"\d+(?:st|nd|rd|th)\b|\d+|[a-z]+(?:'[a-z]+)?|\+", re.IGNORECASE)
_NUMERIC_DATE = re.compile(
    r"(?<![\d/.-])(?:(\d{4})-(\d{1,2})-(\d{1,2})|(\d{1,2})([/.-])(\d{1,2})\5(\d{4}|\d{2}))(?![\d/.-]*\d)"
)
_JOIN = re.compile(r"\s*-?\s*")
"""What may stand between two tokens of one spoken or typed number."""
_TEENS = {w: v for w, v in UNITS.items() if v >= 10}
_REPEAT = {"double": 2, "triple": 3}
_MONTH_WORDS = {m.lower() for m in MONTHS} | {"jan", "feb", "sept", "oct", "nov", "dec", "aug"}
"""Month words that start a date ("may", "mar", "jun" ... are ordinary words too often)."""
_FILLERS = frozenset(
    "um umm uh uhh er erm hmm ah well so yeah yes yep ok okay sure it it's its is that's thats like".split()
)
_Phrases = tuple[tuple[str, ...], ...]
_CVV_WORDS: _Phrases = (
    *(("cvv",), ("cvc",), ("cv2",), ("cvv2",), ("csc",), ("c", "v", "v"), ("c", "v", "c")),
    *(("security", "code"), ("verification", "code"), ("verification", "number"), ("card", "code")),
)
_PIN_WORDS: _Phrases = (("pin",), ("pins",), ("passcode",), ("password",), ("pass", "code"), ("p", "i", "n"))
_DOB_WORDS: _Phrases = (("born",), ("birth",), ("birthday",), ("dob",), ("d", "o", "b"), ("birthdate",))
_KEYWORD_WINDOW = 6
"""A keyword counts for a number at most this many words before it ("security code on the back is ...")."""
_PIN_WINDOW = 4
"""... a PIN keyword at most this many ("my pin is uh ..."; not "my pin is wrong, order 100004")."""
_EARLIEST_YEAR = 1800
RECENT_YEARS = 10
"""A date with a year this recent is not taken for a date of birth unless a birth word comes before it
("it broke on the fifth of march twenty twenty five" stays readable for the agent)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span of the text: ``text[start:end]`` is replaced by ``mask``."""

    mask: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Tok:
    low: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` (digits only) passes the Luhn check."""
    if not digits or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_card(digits: str) -> bool:
    """13-19 digits, first digit 2-9, Luhn-valid (see the module docstring)."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456789" and luhn_ok(digits)


def mask_text(
    text: str, *, bare_digits_are_pin: bool = True, keyed: bool = False, today: date | None = None
) -> str:
    """``text`` with every card number, security code, PIN and date of birth replaced by its mask."""
    found = find_sensitive(text, bare_digits_are_pin=bare_digits_are_pin, keyed=keyed, today=today)
    out = text
    for f in sorted(found, key=lambda f: f.start, reverse=True):
        out = out[: f.start] + f.mask + out[f.end :]
    return out


def only_masks(text: str) -> bool:
    """Whether a masked ``text`` holds masks and nothing else that means anything ("[pin]", "uh [pin]")."""
    rest = re.sub("|".join(re.escape(m) for m in MASKS), " ", text)
    return rest != text and all(t.lower() in _FILLERS for t in _TOKEN.findall(rest))


def kinds(text: str) -> list[str]:
    """The masks in an already masked ``text``, in order (for counting, never for showing)."""
    return re.findall("|".join(re.escape(m) for m in MASKS), text)


def find_sensitive(
    text: str, *, bare_digits_are_pin: bool = True, keyed: bool = False, today: date | None = None
) -> list[Finding]:
    """The sensitive spans of ``text``, not overlapping (see :func:`mask_text`)."""
    today = today or date.today()
    found: list[Finding] = []
    lowered = [m.group().lower() for m in _TOKEN.finditer(text)]
    for m in _NUMERIC_DATE.finditer(text):
        before = len(_TOKEN.findall(text[: m.start()]))
        if _numeric_date_ok(m, today, _has_keyword(lowered, before, _DOB_WORDS)):
            found.append(Finding(DATE, m.start(), m.end()))
    toks = [
        _Tok(m.group().lower(), m.start(), m.end())
        for m in _TOKEN.finditer(text)
        if not any(f.start <= m.start() < f.end for f in found)
    ]
    low = [t.low for t in toks]
    used = [False] * len(toks)
    for start, end in _spoken_dates(low, today):
        found.append(Finding(DATE, toks[start].start, toks[end - 1].end))
        used[start:end] = [True] * (end - start)
    runs = _number_runs(text, toks, used)
    for s, e in runs:
        digits = _digits(low[s:e])
        mask = _classify(low, s, e, digits, today, keyed)
        if mask is not None:
            found.append(Finding(mask, toks[s].start, toks[e - 1].end))
            used[s:e] = [True] * (e - s)
    if bare_digits_are_pin and len(runs) == 1:
        s, e = runs[0]
        others = [t for i, t in enumerate(low) if not s <= i < e]
        if not used[s] and 4 <= len(_digits(low[s:e])) <= 6 and all(t in _FILLERS for t in others):
            found.append(Finding(PIN, toks[s].start, toks[e - 1].end))
    return sorted(found, key=lambda f: f.start)


def _birth_year(year: int | None, today: date, born: bool) -> bool:
    """Whether ``year`` may be a year of birth: from 1800, not ahead, not recent unless ``born`` is said."""
    if year is None or not _EARLIEST_YEAR <= year <= today.year:
        return False
    return born or year <= today.year - RECENT_YEARS


def _numeric_date_ok(m: re.Match[str], today: date, born: bool) -> bool:
    if m.group(1):
        y, a, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        a, b, raw_year = int(m.group(4)), int(m.group(6)), m.group(7)
        y = int(raw_year) if len(raw_year) == 4 else spoken_year([raw_year], today) or 0
    if not _birth_year(y, today, born):
        return False
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def _has_keyword(
    low: list[str], start: int, words: tuple[tuple[str, ...], ...], reach: int = _KEYWORD_WINDOW
) -> bool:
    window = low[max(0, start - reach) : start]
    for phrase in words:
        n = len(phrase)
        if any(tuple(window[i : i + n]) == phrase for i in range(len(window) - n + 1)):
            return True
    return False


def _year_at(low: list[str], i: int, today: date, born: bool) -> int | None:
    """How many tokens from ``i`` make a year of birth (longest first); ``None`` when none do."""
    for n in (4, 3, 2, 1):
        if i + n <= len(low) and _birth_year(spoken_year(low[i : i + n], today), today, born):
            return n
    return None


def _day_at(low: list[str], i: int) -> int | None:
    """The index after a day of the month ("the fifth", "5th", "twenty first") at ``i``, if one is there."""
    j = i + 1 if i < len(low) and low[i] == "the" else i
    num = number_at(low, j)
    if num is None or not 1 <= num.value <= 31:
        return None
    return num.end


def _spoken_dates(low: list[str], today: date) -> list[tuple[int, int]]:
    """Token spans of dates said with a month name: with a year, or after a birth keyword."""
    spans: list[tuple[int, int]] = []
    for m, word in enumerate(low):
        if word not in _MONTH_WORDS or (spans and m < spans[-1][1]):
            continue
        start, end = m, m + 1
        # the fifth of march / 5 march
        for back in (3, 2, 1):
            s = m - back
            if s < 0:
                continue
            j = _day_at(low, s)
            k = m - 1 if m >= 1 and low[m - 1] == "of" else m
            if j == k and (not spans or s >= spans[-1][1]):
                start = s
                break
        if start == m:  # march fifth / march the fifth
            j = _day_at(low, m + 1)
            if j is not None:
                end = j
        if start == m and end == m + 1:
            continue  # a month without a day
        born = _has_keyword(low, start, _DOB_WORDS)
        n = _year_at(low, end, today, born)
        if n is not None:
            spans.append((start, end + n))
        elif born:
            spans.append((start, end))
    return spans


def _is_number_token(t: str) -> bool:
    return t.isdigit() or t in DIGIT_WORDS or t in _TEENS or t in TENS_VALUES or t in _REPEAT


def _number_runs(text: str, toks: list[_Tok], used: list[bool]) -> list[tuple[int, int]]:
    """Spans of consecutive number tokens joined only by spaces or dashes."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if used[i] or not _is_number_token(toks[i].low):
            i += 1
            continue
        j = i + 1
        while j < len(toks) and not used[j] and _is_number_token(toks[j].low):
            if not _JOIN.fullmatch(text[toks[j - 1].end : toks[j].start]):
                break
            j += 1
        # trailing "double"/"triple" and a lone "oh"/"o" are not numbers
        while j > i and toks[j - 1].low in _REPEAT:
            j -= 1
        run = [t.low for t in toks[i:j]]
        if run and any(t not in ("oh", "o") and t not in _REPEAT for t in run):
            runs.append((i, j))
        i = max(j, i + 1)
    return runs


def _digits(run: list[str]) -> str:
    """A run of number tokens read digit by digit: "forty one eleven" is "4111", "double five" "55"."""
    out: list[str] = []
    repeat = 1
    i = 0
    while i < len(run):
        t = run[i]
        if t in _REPEAT:
            repeat = _REPEAT[t]
            i += 1
            continue
        if t.isdigit():
            piece = t
        elif t in DIGIT_WORDS:
            piece = DIGIT_WORDS[t]
        elif t in _TEENS:
            piece = str(_TEENS[t])
        else:  # tens: "forty" / "forty one"
            unit = run[i + 1] if i + 1 < len(run) else ""
            if unit in DIGIT_WORDS and unit not in ("oh", "o", "zero"):
                piece = str(TENS_VALUES[t] + int(DIGIT_WORDS[unit]))
                i += 1
            else:
                piece = str(TENS_VALUES[t])
        out.append(piece * repeat)
        repeat = 1
        i += 1
    return "".join(out)


def _classify(low: list[str], s: int, e: int, digits: str, today: date, keyed: bool) -> str | None:
    plus = s > 0 and low[s - 1] in ("+", "plus")
    if not plus and _card_in(low[s:e]):
        return CARD
    if _has_keyword(low, s, _CVV_WORDS) and 3 <= len(digits) <= 4:
        return CVV
    if _has_keyword(low, s, _PIN_WORDS, _PIN_WINDOW) and 3 <= len(digits) <= 12:
        return PIN
    born = _has_keyword(low, s, _DOB_WORDS)
    if born and len(digits) >= 4:
        return DATE
    if not any(t.isdigit() for t in low[s:e]) and any(t in _TEENS or t in TENS_VALUES for t in low[s:e]):
        said = parse_dob(" ".join(low[s:e]), today)
        if said is not None and _birth_year(said.year, today, born):
            return DATE
    if keyed and len(digits) >= 3:
        return DIGITS
    return None


def _card_in(run: list[str]) -> bool:
    """The run is a card number, or starts with one (a card said straight before its code)."""
    if looks_like_card(_digits(run)):
        return True
    for n in range(len(run) - 1, 0, -1):
        head = _digits(run[:n])
        if len(head) < 13:
            break
        if looks_like_card(head):
            return True
    return False


__all__ = [
    "CARD",
    "CVV",
    "DATE",
    "DIGITS",
    "MASKS",
    "PIN",
    "Finding",
    "find_sensitive",
    "kinds",
    "looks_like_card",
    "luhn_ok",
    "mask_text",
    "only_masks",
]
