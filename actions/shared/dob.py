"""Dates of birth as callers say or key them, for verification (pure: the caller may pass ``today``).

:func:`parse_dob` reads the date; :func:`looks_like_a_date` tells words that try to be one ("the thirty second
of smarch") from words that do not, so the Rasa channel can keep both out of the conversation record.
"""

from __future__ import annotations

import re
from datetime import date

from actions.shared.numerals import (
    MONTH_NUMBERS,
    MONTHS,
    ORDINAL_ONES,
    ORDINAL_TENS_VALUES,
    ORDINAL_UNITS,
    TENS_VALUES,
    UNITS,
    ZERO_WORDS,
    digits_from_speech,
    number_at,
    spoken_year,
    tokens,
)

_DOB_WORDS = (
    frozenset(UNITS)
    | set(TENS_VALUES)
    | set(ORDINAL_UNITS)
    | set(ORDINAL_TENS_VALUES)
    | {"hundred", "thousand", "and"}
)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b")
_EARLIEST_BIRTH_YEAR = 1800


def _plausible(y: int | None, m: int, d: int, today: date) -> date | None:
    if y is None or not _EARLIEST_BIRTH_YEAR <= y <= today.year:
        return None
    try:
        born = date(y, m, d)
    except ValueError:
        return None
    return born if born <= today else None


def _day_of_month(toks: list[str]) -> int | None:
    if toks and toks[0] == "the":
        toks = toks[1:]
    if toks and toks[-1] == "of":
        toks = toks[:-1]
    num = number_at(toks, 0)
    if num is None or num.end != len(toks) or not 1 <= num.value <= 31:
        return None
    return num.value


def _month_number(toks: list[str]) -> int | None:
    num = number_at(toks, 0)
    if num is None or num.end != len(toks) or num.ordinal or not 1 <= num.value <= 12:
        return None
    return num.value


def parse_dob(text: str, today: date | None = None) -> date | None:
    """A spoken or typed date of birth, or ``None``.

    Accepted: "december tenth eighteen fifteen", "the tenth of december eighteen fifteen",
    "ten december nineteen ninety", "nineteen eighty four march third", "march three two thousand and
    one", "twelve ten nineteen ninety" and "12/10/1815" (month first, US style; day first when the first
    number cannot be a month), "1815-12-10". The year is required. Only plausible dates: from 1800 to
    ``today`` (default: the real today); a future date is ``None``.
    """
    today = today or date.today()
    low = text.lower()
    m = _ISO_DATE.search(low)
    if m:
        return _plausible(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = _SLASH_DATE.search(low)
    if m:
        a, b, yy = int(m.group(1)), int(m.group(2)), m.group(3)
        year = spoken_year([yy], today)
        if a > 12 >= b:
            a, b = b, a
        return _plausible(year, a, b, today)
    toks = [
        t for t in tokens(low) if t in _DOB_WORDS or t in MONTH_NUMBERS or t in ZERO_WORDS or t[0].isdigit()
    ]
    toks = [t for t in toks if t not in MONTH_NUMBERS or t != "may" or len(toks) > 1]
    months = [i for i, t in enumerate(toks) if t in MONTH_NUMBERS]
    if len(months) == 1:
        at = months[0]
        month = MONTH_NUMBERS[toks[at]]
        left, right = toks[:at], [t for t in toks[at + 1 :] if t != "of"]
        left = [t for t in left if t != "of"]
        options: list[tuple[list[str], list[str]]] = []
        if left and right:
            options += [(left, right), (right, left)]  # (day, year): "ten december 1990" / "1984 march third"
        else:
            side = left or right
            options += [(side[:k], side[k:]) for k in range(1, len(side))]  # day then year
            options += [(side[k:], side[:k]) for k in range(1, len(side))]  # year then day
        for day_toks, year_toks in options:
            day = _day_of_month(day_toks)
            if day is not None:
                born = _plausible(spoken_year(year_toks, today), month, day, today)
                if born is not None:
                    return born
        return None
    if months:
        return None
    toks = [t for t in toks if t != "of"]
    for i in range(1, len(toks)):
        for j in range(i + 1, len(toks)):
            first, second = _month_number(toks[:i]), _day_of_month(toks[i:j])
            year = spoken_year(toks[j:], today)
            if first is not None and second is not None:
                born = _plausible(year, first, second, today)
                if born is not None:
                    return born
            first_day, second_month = _day_of_month(toks[:i]), _month_number(toks[i:j])
            if first_day is not None and second_month is not None and first_day > 12:
                born = _plausible(year, second_month, first_day, today)
                if born is not None:
                    return born
    return None


_DATE_WORDS = re.compile(
    r"\b("
    + "|".join(m.lower() for m in MONTHS if m != "May")  # "may" is too common a word
    + "|"
    + "|".join(ORDINAL_ONES[1:])
    + r"|[a-z]+teenth|twentieth|thirtieth|\d+(st|nd|rd|th))\b"
)


def looks_like_a_date(text: str) -> bool:
    """Whether ``text`` holds digits or date words (a month, an ordinal), whether or not they make a date."""
    return digits_from_speech(text) is not None or bool(_DATE_WORDS.search(text.lower()))
