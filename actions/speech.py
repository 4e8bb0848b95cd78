"""How numbers are heard and said on the phone.

Heard: the recogniser writes digits as words ("four seven one nine", "oh" for zero); the keypad sends
digit characters ("4719"). :func:`digits_from_speech` turns either into a digit string.

Said: replies are read by a speech synthesiser, so amounts are written out in words
(:func:`say_money`: 12050 cents -> "one hundred twenty dollars and fifty cents"), which every voice
reads the same way, instead of "$120.50", which depends on the voice's text normaliser.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta

_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_REPEAT_WORDS = {"double": 2, "triple": 3}
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_WORD = re.compile(r"[^\W_]+")
"""Words in any script (a recogniser for another language, or a name, is content, not a filler)."""


def digits_from_speech(text: str) -> str | None:
    """All digits in ``text``, spoken or typed, in order; ``None`` when there are none.

    Everything that is not a digit (fillers, "my pin is", keypad ``#`` and ``*``) is dropped;
    "double five" is "55". A lone "oh" is treated as zero only next to other digits, so "oh hello"
    yields ``None``.
    """
    tokens = _TOKEN.findall(text.lower())
    out: list[str] = []
    repeat = 1
    saw_real_digit = False
    for tok in tokens:
        if tok.isdigit():
            out.append(tok * repeat)
            repeat = 1
            saw_real_digit = True
        elif tok in _REPEAT_WORDS:
            repeat = _REPEAT_WORDS[tok]
        elif tok in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[tok] * repeat)
            repeat = 1
            if tok not in ("oh", "o"):
                saw_real_digit = True
        else:
            repeat = 1
    if not out or not saw_real_digit:
        return None
    return "".join(out)


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


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))


def number_words(n: int) -> str:
    """``n`` (0 <= n < 10**12) in words, American style: 120 -> "one hundred twenty"."""
    if n < 0 or n >= 10**12:
        raise ValueError(f"out of range: {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for size, name in _SCALES:
        if n >= size:
            big, rest = divmod(n, size)
            return number_words(big) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError("unreachable")


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


_ORDINAL_ENDINGS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_DIGIT_NAMES = dict(zip("0123456789", _ONES[:10], strict=True))
_WEEKDAY_NAMES = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_MONTH_NAMES = (
    "_ January February March April May June July August September October November December".split()
)


def ordinal_words(n: int) -> str:
    """``n`` (0 <= n < 10**12) as an ordinal in words: 24 -> "twenty fourth", 12 -> "twelfth"."""
    words = number_words(n).split()
    last = words[-1]
    if last in _ORDINAL_ENDINGS:
        words[-1] = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


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
    said = f"{_WEEKDAY_NAMES[d.weekday()]} the {ordinal_words(d.day)} of {_MONTH_NAMES[d.month]}"
    return said if d.year == today.year else f"{said} {say_year(d.year)}"


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
    return " ".join(_DIGIT_NAMES[c] for c in s if c in _DIGIT_NAMES)


def say_weekday_hours(opens: time, closes: time) -> str:
    """Opening hours in words: "nine a m to five thirty p m"."""
    return f"{say_time(opens)} to {say_time(closes)}"
