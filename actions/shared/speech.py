"""Spoken forms: how the bot says amounts, dates, times, digits and lists, and which heard words are fillers.

Replies are read by a speech synthesiser, so everything is written out in words (:func:`say_money`: 12050
cents -> "one hundred twenty dollars and fifty cents"), which every voice reads the same way, instead of
"$120.50", which depends on the voice's text normaliser. These render the values that go into the editors'
sentences (``nlu-data/domain.yml`` responses); the sentences themselves are not built here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, time, timedelta

from actions.shared.numerals import MONTHS, ONES, WEEKDAYS, number_words, ordinal_words

_WORD = re.compile(r"[^\W_]+")
"""Words in any script (a recogniser for another language, or a name, is content, not a filler)."""

FILLERS = frozenset("uh uhh um umm er erm ah ahh eh hm hmm mm huh oh well like so and the a an".split())
"""Words that carry nothing on their own: hesitations, and what a recogniser makes of line noise."""


def is_filler_only(text: str) -> bool:
    """Whether ``text`` has no content words at all ("uh", "um the", "hmm", but not "mm hmm" = yes).

    Digits count as content, so "oh" alone is a filler but "oh four" is not.
    """
    tokens = _WORD.findall(text.lower())
    if " ".join(tokens) in ("mm hmm", "uh huh", "mhm"):
        return False
    return all(tok in FILLERS for tok in tokens)


def say_money(cents: int, unit: str = "dollar", subunit: str = "cent") -> str:
    """An amount in words: 12050 -> "one hundred twenty dollars and fifty cents"; negative is "minus"."""
    sign = "minus " if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)

    def plural(k: int, word: str) -> str:
        return f"{number_words(k)} {word}{'' if k == 1 else 's'}"

    if part == 0:
        return sign + plural(whole, unit)
    if whole == 0:
        return sign + plural(part, subunit)
    return f"{sign}{plural(whole, unit)} and {plural(part, subunit)}"


def say_year(year: int) -> str:
    """A year as it is read aloud: 1990 -> "nineteen ninety", 1905 -> "nineteen oh five", 2000 -> "two
    thousand", 2007 -> "two thousand seven", 2026 -> "twenty twenty six", 1900 -> "nineteen hundred"."""
    if not 1000 <= year <= 9999 or 2000 <= year <= 2009 or year % 1000 == 0:
        return number_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_words(high)} hundred"
    return f"{number_words(high)} {'oh ' if low < 10 else ''}{number_words(low)}"


def say_date(d: date, today: date) -> str:
    """A date for the synthesiser: "today", "tomorrow", else "Tuesday the twenty fourth of November",
    with the year ("... of January twenty twenty seven") only when it is not ``today``'s year."""
    if d == today:
        return "today"
    if d == today + timedelta(days=1):
        return "tomorrow"
    said = f"{WEEKDAYS[d.weekday()]} the {ordinal_words(d.day)} of {MONTHS[d.month - 1]}"
    return said if d.year == today.year else f"{said} {say_year(d.year)}"


def on_day(d: date, today: date) -> str:
    """A date as said after a verb: "today", "tomorrow", "on Tuesday the first of December"."""
    said = say_date(d, today)
    return said if said in ("today", "tomorrow") else f"on {said}"


def say_time(t: time) -> str:
    """A clock time in words: "ten a m", "two thirty p m", "nine oh five a m", "noon", "midnight".

    Written "a m" / "p m" so the voice spells them out; seconds are dropped.
    """
    if t.minute == 0 and t.hour in (0, 12):
        return "midnight" if t.hour == 0 else "noon"
    hour = number_words(t.hour % 12 or 12)
    minute = "" if t.minute == 0 else f" {'oh ' if t.minute < 10 else ''}{number_words(t.minute)}"
    return f"{hour}{minute} {'a m' if t.hour < 12 else 'p m'}"


def say_digits(s: str) -> str:
    """Each digit of ``s`` as a word, other characters dropped: "100004" -> "one zero zero zero zero four"."""
    return " ".join(ONES[int(c)] for c in s if "0" <= c <= "9")


def say_weekday_hours(opens: time, closes: time) -> str:
    """Opening hours in words: "nine a m to five thirty p m"."""
    return f"{say_time(opens)} to {say_time(closes)}"


def say_list(items: Sequence[str]) -> str:
    """Items as a spoken list: "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
