"""Numbers, weekdays and months as words: the one set of word tables, and numbers both ways.

Said: :func:`number_words` (120 -> "one hundred twenty"), :func:`ordinal_words` (24 -> "twenty fourth").
Heard: the recogniser writes numbers as words ("four seven one nine", "oh" for zero, "twenty fourth"), the
keypad as digits; :func:`digits_from_speech` reads digit strings, :func:`parse_quantity` "how many", and the
number readers below (:func:`tokens`, :func:`number_at`, :func:`cardinal`, :func:`spoken_year`) are what the
date parsers (:mod:`actions.shared.when`, :mod:`actions.shared.dob`) build on.

Every other module that needs these words takes them from here (English, American style; independent of the
process's locale, unlike :mod:`calendar`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# --- the word tables -------------------------------------------------------------------------------------

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
"""0-19 in words, by value."""
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
"""Tens in words, by the tens digit (``TENS[2] == "twenty"``; 0 and 1 unused)."""
ORDINAL_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
"""0th-19th in words, by value."""
ORDINAL_TENS = "_ _ twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth".split()
"""Ordinal tens in words, by the tens digit."""
SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))
ZERO_WORDS = ("oh", "o", "zero")
"""What callers say for the digit 0."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
"""By :meth:`datetime.date.weekday` (0 is Monday)."""
MONTHS = "January February March April May June July August September October November December".split()
"""By month number minus one (``MONTHS[0]`` is January)."""
MONTH_ABBREVIATIONS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}

# Lookups derived from the tables (lower-case word -> value).
UNITS = {w: i for i, w in enumerate(ONES)}
""""zero" .. "nineteen" -> 0 .. 19."""
TENS_VALUES = {w: 10 * i for i, w in enumerate(TENS) if i >= 2}
"""'twenty' -> 20 .. 'ninety' -> 90."""
ORDINAL_UNITS = {w: i for i, w in enumerate(ORDINAL_ONES) if i}
""""first" .. "nineteenth" -> 1 .. 19."""
ORDINAL_TENS_VALUES = {w: 10 * i for i, w in enumerate(ORDINAL_TENS) if i >= 2}
""""twentieth" -> 20 .. "ninetieth" -> 90."""
WEEKDAY_NUMBERS = {d.lower(): i for i, d in enumerate(WEEKDAYS)}
""""monday" -> 0 .. "sunday" -> 6."""
MONTH_NUMBERS = {m.lower(): i for i, m in enumerate(MONTHS, start=1)} | MONTH_ABBREVIATIONS
""""january" / "jan" -> 1 .. "december" / "dec" -> 12 (and "sept")."""
DIGIT_WORDS = {w: str(i) for i, w in enumerate(ONES[:10])} | {z: "0" for z in ZERO_WORDS}
"""A spoken digit -> the digit character."""


# --- said --------------------------------------------------------------------------------------------------


def number_words(n: int) -> str:
    """``n`` (0 <= n < 10**12) in words, American style: 120 -> "one hundred twenty"."""
    if n < 0 or n >= 10**12:
        raise ValueError(f"out of range: {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return TENS[tens] + ("" if ones == 0 else " " + ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for size, name in SCALES:
        if n >= size:
            big, rest = divmod(n, size)
            return number_words(big) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """``n`` (0 <= n < 10**12) as an ordinal in words: 24 -> "twenty fourth", 12 -> "twelfth"."""
    words = number_words(n).split()
    last = words[-1]
    if last in UNITS:
        words[-1] = ORDINAL_ONES[UNITS[last]]
    elif last in TENS_VALUES:
        words[-1] = ORDINAL_TENS[TENS_VALUES[last] // 10]
    else:  # hundred, thousand, million, billion
        words[-1] = last + "th"
    return " ".join(words)


# --- heard -------------------------------------------------------------------------------------------------

_DIGIT_TOKEN = re.compile(r"[a-z']+|[0-9]+")
_REPEAT_WORDS = {"double": 2, "triple": 3}
_RUN_GLUE = frozenset("uh uhh um umm er erm ah eh hm hmm mm and".split())
"""Words said inside a run of digits that do not end it ("four seven uh one nine")."""
CORRECTION_WORDS = frozenset(
    "no sorry wait actually mean meant rather correction scratch wrong oops hang".split()
)
"""Words by which a caller takes back the digits said before ("one two three five sorry one two three
four"): when they come between two runs of digits, only the last run counts."""
_PRONOUN_ONE_AFTER = frozenset("the that this wrong right other last first which a no another same".split())
"""A lone "one" after these words is a pronoun ("the wrong one", "just the one"), not a digit."""


def digits_from_speech(text: str) -> str | None:
    """All digits in ``text``, spoken or typed, in order; ``None`` when there are none.

    Everything that is not a digit (fillers, "my pin is", keypad ``#`` and ``*``) is dropped;
    "double five" is "55". The digits come in runs: words between runs are dropped, and when the caller
    takes the earlier digits back between two runs ("one two three five sorry one two three four", "no wait
    ..."), only the last run counts. "oh" is a zero only inside a run with a real digit ("two five eight oh",
    "oh three five eight"), so "oh sorry it's one two three four" is "1234" and "oh hello" ``None``; a lone
    "one" after "the", "wrong", "that" ... is a pronoun ("the wrong one, it's one zero ...").
    """
    toks = [t.replace("'", "") for t in _DIGIT_TOKEN.findall(text.lower().replace("\u2019", "'"))]
    runs: list[tuple[list[str], bool, bool]] = []  # (digits, has a real digit, taken back before it)
    current: list[str] = []
    real = False
    taken_back = False
    gap: list[str] = []
    repeat = 1

    def close() -> None:
        nonlocal current, real
        if current and real:
            runs.append((current, real, taken_back))
        current, real = [], False

    for i, tok in enumerate(toks):
        digit = tok if tok.isdigit() else DIGIT_WORDS.get(tok)
        if digit is not None and tok == "one" and not current:
            before = toks[i - 1] if i else ""
            after = toks[i + 1] if i + 1 < len(toks) else ""
            if before in _PRONOUN_ONE_AFTER and after not in DIGIT_WORDS and not after.isdigit():
                digit = None
        if digit is not None:
            if not current:
                taken_back = bool(runs) and bool(CORRECTION_WORDS & set(gap))
                gap = []
            current.append(digit * repeat)
            repeat = 1
            real = real or tok not in ("oh", "o")
        elif tok in _REPEAT_WORDS:
            repeat = _REPEAT_WORDS[tok]
        elif tok in _RUN_GLUE and current:
            continue
        else:
            repeat = 1
            close()
            gap.append(tok)
    close()
    if not runs:
        return None
    start = max((i for i, run in enumerate(runs) if run[2]), default=0)
    return "".join("".join(run[0]) for run in runs[start:])


_TOKEN = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}:\d{2}|\d+(?:st|nd|rd|th)\b|\d+|[a-z]+"
)
DIGIT_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
"""A typed ordinal: "24th"."""


def tokens(text: str) -> list[str]:
    """Lower-case words and digit groups; "a.m." / "a m" become "am", "o'clock" / "o clock" "oclock"."""
    low = text.lower().replace("\u2019", "'").replace("o'clock", "oclock")
    low = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", low)
    raw = _TOKEN.findall(low)
    out: list[str] = []
    i = 0
    while i < len(raw):
        pair = raw[i : i + 2]
        if pair in (["a", "m"], ["p", "m"]):
            out.append(pair[0] + "m")
            i += 2
        elif pair == ["o", "clock"]:
            out.append("oclock")
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return out


@dataclass(frozen=True, slots=True)
class Num:
    """A number read from tokens: its value, whether it was an ordinal, and the token index after it."""

    value: int
    ordinal: bool
    end: int


def number_at(toks: list[str], i: int) -> Num | None:
    """A number 0-99 at ``toks[i]``: "7", "24th", "seven", "twenty four", "twenty fourth", "tenth"."""
    if i >= len(toks):
        return None
    t = toks[i]
    if t.isdigit():
        return Num(int(t), False, i + 1) if len(t) <= 2 else None
    m = DIGIT_ORDINAL.fullmatch(t)
    if m:
        return Num(int(m.group(1)), True, i + 1)
    if t in TENS_VALUES:
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if 1 <= UNITS.get(nxt, 0) <= 9:
            return Num(TENS_VALUES[t] + UNITS[nxt], False, i + 2)
        if 1 <= ORDINAL_UNITS.get(nxt, 0) <= 9:
            return Num(TENS_VALUES[t] + ORDINAL_UNITS[nxt], True, i + 2)
        return Num(TENS_VALUES[t], False, i + 1)
    if t in ORDINAL_TENS_VALUES:
        return Num(ORDINAL_TENS_VALUES[t], True, i + 1)
    if t in UNITS:
        return Num(UNITS[t], False, i + 1)
    if t in ORDINAL_UNITS:
        return Num(ORDINAL_UNITS[t], True, i + 1)
    return None


def _below_1000(toks: list[str], i: int) -> tuple[int, bool, int] | None:
    """``[n hundred [and]] [tens [unit] | unit]`` at ``toks[i]``: (value, ordinal, end)."""
    value = 0
    j = i
    head = number_at(toks, j)
    if (
        head is not None
        and not head.ordinal
        and 1 <= head.value <= 19
        and not toks[j].isdigit()
        and head.end < len(toks)
        and toks[head.end] == "hundred"
    ):
        value = head.value * 100
        j = head.end + 1
        if j < len(toks) and toks[j] == "and":
            j += 1
    rest = number_at(toks, j) if j < len(toks) and not toks[j].isdigit() else None
    if rest is not None:
        return value + rest.value, rest.ordinal, rest.end
    if j > i:
        if toks[j - 1] == "and":
            j -= 1
        return value, False, j
    return None


def cardinal(toks: list[str]) -> tuple[int, bool] | None:
    """``toks`` as one whole number in words, up to 999999 ("two thousand and one"), or one digit group:
    (value, ordinal)."""
    if not toks:
        return None
    if len(toks) == 1 and toks[0].isdigit():
        return int(toks[0]), False
    if len(toks) == 1 and DIGIT_ORDINAL.fullmatch(toks[0]):
        return int(toks[0][:-2]), True
    value = 0
    j = 0
    first = _below_1000(toks, 0)
    if first is not None and first[2] < len(toks) and toks[first[2]] == "thousand" and not first[1]:
        value = first[0] * 1000
        j = first[2] + 1
        if j < len(toks) and toks[j] == "and":
            j += 1
        if j == len(toks):
            return value, False
    elif first is None and toks[0] == "thousand":
        return None
    rest = _below_1000(toks, j)
    if rest is None or rest[2] != len(toks):
        return None
    return value + rest[0], rest[1]


def spoken_year(toks: list[str], today: date) -> int | None:
    """A year: "1990", "nineteen ninety", "eighteen fifteen", "nineteen oh five", "two thousand and one",
    "twenty twenty four", "nineteen hundred"; a two-digit "90" / "ninety" is the latest such year not after
    ``today``."""
    whole = cardinal(toks)
    if whole is not None and not whole[1]:
        if whole[0] >= 1000:
            return whole[0]
        if len(toks) == 1 and whole[0] < 100 and (toks[0].isdigit() or whole[0] >= 10):
            century = today.year // 100 * 100
            return century + whole[0] if century + whole[0] <= today.year else century - 100 + whole[0]
    for split in (1, 2):
        head = number_at(toks[:split], 0)
        if head is None or head.end != split or head.ordinal or not 10 <= head.value <= 99:
            continue
        if toks[0].isdigit():
            continue
        tail = toks[split:]
        if len(tail) == 2 and tail[0] in ZERO_WORDS and 1 <= UNITS.get(tail[1], 0) <= 9:
            return head.value * 100 + UNITS[tail[1]]
        low = number_at(tail, 0)
        if low is not None and low.end == len(tail) and not low.ordinal and 10 <= low.value <= 99:
            if not tail[0].isdigit():
                return head.value * 100 + low.value
    return None


# --- how many ----------------------------------------------------------------------------------------------

_QUANTITY_PHRASES = (
    (("half", "a", "dozen"), 6),
    (("a", "couple"), 2),
    (("couple",), 2),
    (("a", "pair"), 2),
    (("a", "dozen"), 12),
    (("dozen",), 12),
)


def parse_quantity(text: str) -> int | None:
    """How many, 1-99: "two", "a couple of", "three of them", "5", "a dozen"; "a" / "an" / "one" are 1.

    ``None`` when there is no quantity, when it is out of range ("a hundred", "none"), or when the text
    holds more than one number ("two adults and one child", "one two three four"), which is ambiguous.
    "a few" and "several" are not quantities.
    """
    toks = tokens(text)
    found: list[int] = []
    article = False
    i = 0
    while i < len(toks):
        for phrase, value in _QUANTITY_PHRASES:
            if tuple(toks[i : i + len(phrase)]) == phrase:
                found.append(value)
                i += len(phrase)
                break
        else:
            t = toks[i]
            if t in ("a", "an", "single"):
                if i + 1 < len(toks) and toks[i + 1] in ("hundred", "thousand", "million"):
                    return None
                article = article or (i + 1 < len(toks) and toks[i + 1] not in ("few", "lot", "bit"))
                article = article or i + 1 == len(toks)
                i += 1
                continue
            num = number_at(toks, i)
            if num is None or num.ordinal or (t in ZERO_WORDS and t != "zero"):
                i += 1
                continue
            end = num.end
            if end < len(toks) and toks[end] in ("hundred", "thousand", "million"):
                return None
            found.append(num.value)
            i = end
    if len(found) > 1:
        return None
    if found:
        return found[0] if 1 <= found[0] <= 99 else None
    return 1 if article else None
