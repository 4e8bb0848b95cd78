"""Dates, times and quantities as callers say them, for bookings and callback windows.

The input is what the recogniser writes: lower case, no punctuation, numbers as words ("ten thirty"),
fillers around ("um can i come in next tuesday afternoon please"). Typed forms ("10:30", "3pm",
"24th", "1990-12-10") are accepted too. Everything here is pure: the caller passes ``now``.

Rules for the ambiguous cases (the tests pin each one):

* A bare hour is a time only when something marks it as one: "at"/"around"/"about"/"by" or a range
  word before it ("after four", "between two and four"), minutes after it ("ten thirty"), "o'clock",
  or "a m"/"p m"/"in the morning". "three of them" and "one two three four" are not times.
* An hour without a m / p m: 1-7 is p m, 8-11 is a m, 12 is noon; a part of the day said with it
  decides instead ("tomorrow morning at seven" is 07:00, "this evening at eight" is 20:00). Typed
  24-hour times ("14:00", "0:30") are taken as they are.
* "tuesday", "this tuesday", "on tuesday": the first Tuesday from today on, today included while the
  window is not over. "next tuesday": the Tuesday of next week, weeks running Sunday to Saturday (the
  US calendar reading), so it is the first Tuesday after today except when said on Sunday or Monday,
  when it is the one after that (Monday 23rd -> Tuesday 1st, not Tuesday 24th). "tuesday next week"
  is the Tuesday of ``next week``.
* "next week" is Monday 00:00 to the Monday after; "this week" is now to next Monday 00:00;
  "this weekend" is Saturday 00:00 to Monday 00:00.
* "the twenty fourth" (a day of the month needs "the" or a typed "24th") is its next occurrence,
  this month if not past; "november twenty fourth" is its next occurrence, this year if not past.
* A time with no date is today if still ahead, else tomorrow; "today at nine" said at 09:15 likewise
  rolls to tomorrow 09:00 (the bot reads the date back, so the caller hears it).
* Windows never start before ``now``: a window already under way starts at ``now``; one that is over
  (or an exact time already past) moves to its next occurrence: the next day for times and for
  "today"/"this afternoon", the next week for weekdays, the next month or year for dates.
* An exact time is a one-hour window (:data:`EXACT_LENGTH`) with ``exact=True``.
* Parts of the day: morning 08-12, lunchtime 12-14, afternoon 12-17, evening 17-20, night 20-24,
  tonight 17-24. "after four" runs to the end of the day (or of the part of the day said with it),
  "before eleven" from the start of the day (or of the part). "ten to four" is 15:50 after "at" /
  "around" / "about" / "by", otherwise the range 10:00-16:00; "quarter to eleven" is always 10:45.
* "any time", "as soon as possible", "whenever", "earliest", "first available": now to now + 14 days,
  unless the text names a date or time as well ("whenever tomorrow" is tomorrow).
* Words that are neither are ignored, negation included: "not tuesday" is read as Tuesday.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

EXACT_LENGTH = timedelta(hours=1)
"""How long the window for a named clock time is."""
ASAP_LENGTH = timedelta(days=14)
"""How far ahead "any time" / "as soon as possible" reaches."""
DAY = 24 * 60
_SEARCH_LIMIT = 800
"""Candidate days tried before giving up (covers a Feb 29th eight years ahead)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window ``[start, end)``; ``exact`` when the caller named a clock time."""

    start: datetime
    end: datetime
    exact: bool


# --- words and numbers -----------------------------------------------------------------------------------

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i
}
_ORD_UNITS = {
    w: i
    for i, w in enumerate(
        "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
        "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth".split()
    )
    if i
}
_ORD_TENS = {
    w: 10 * i
    for i, w in enumerate(
        "_ _ twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth".split()
    )
    if i
}
_ZERO_WORDS = ("oh", "o", "zero")
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if i}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if i})
_MONTHS["sept"] = 9

_TOKEN = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}:\d{2}|\d+(?:st|nd|rd|th)\b|\d+|[a-z]+"
)
_DIGIT_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
_CLOCK_DIGITS = re.compile(r"(\d{1,2}):(\d{2})")


def _tokens(text: str) -> list[str]:
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
class _Num:
    value: int
    ordinal: bool
    end: int


def _small(toks: list[str], i: int) -> _Num | None:
    """A number 0-99 at ``toks[i]``: "7", "24th", "seven", "twenty four", "twenty fourth", "tenth"."""
    if i >= len(toks):
        return None
    t = toks[i]
    if t.isdigit():
        return _Num(int(t), False, i + 1) if len(t) <= 2 else None
    m = _DIGIT_ORDINAL.fullmatch(t)
    if m:
        return _Num(int(m.group(1)), True, i + 1)
    if t in _TENS:
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if 1 <= _UNITS.get(nxt, 0) <= 9:
            return _Num(_TENS[t] + _UNITS[nxt], False, i + 2)
        if 1 <= _ORD_UNITS.get(nxt, 0) <= 9:
            return _Num(_TENS[t] + _ORD_UNITS[nxt], True, i + 2)
        return _Num(_TENS[t], False, i + 1)
    if t in _ORD_TENS:
        return _Num(_ORD_TENS[t], True, i + 1)
    if t in _UNITS:
        return _Num(_UNITS[t], False, i + 1)
    if t in _ORD_UNITS:
        return _Num(_ORD_UNITS[t], True, i + 1)
    return None


def _below_1000(toks: list[str], i: int) -> tuple[int, bool, int] | None:
    """``[n hundred [and]] [tens [unit] | unit]`` at ``toks[i]``: (value, ordinal, end)."""
    value = 0
    j = i
    head = _small(toks, j)
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
    rest = _small(toks, j) if j < len(toks) and not toks[j].isdigit() else None
    if rest is not None:
        return value + rest.value, rest.ordinal, rest.end
    if j > i:
        if toks[j - 1] == "and":
            j -= 1
        return value, False, j
    return None


def _cardinal(toks: list[str]) -> tuple[int, bool] | None:
    """``toks`` as one whole number in words, up to 999999 ("two thousand and one"), or one digit group."""
    if not toks:
        return None
    if len(toks) == 1 and toks[0].isdigit():
        return int(toks[0]), False
    if len(toks) == 1 and _DIGIT_ORDINAL.fullmatch(toks[0]):
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


def _year(toks: list[str], today: date) -> int | None:
    """A year: "1990", "nineteen ninety", "eighteen fifteen", "nineteen oh five", "two thousand and one",
    "twenty twenty four", "nineteen hundred"; a two-digit "90" / "ninety" is the latest such year not after
    ``today``."""
    whole = _cardinal(toks)
    if whole is not None and not whole[1]:
        if whole[0] >= 1000:
            return whole[0]
        if len(toks) == 1 and whole[0] < 100 and (toks[0].isdigit() or whole[0] >= 10):
            century = today.year // 100 * 100
            return century + whole[0] if century + whole[0] <= today.year else century - 100 + whole[0]
    for split in (1, 2):
        head = _small(toks[:split], 0)
        if head is None or head.end != split or head.ordinal or not 10 <= head.value <= 99:
            continue
        if toks[0].isdigit():
            continue
        tail = toks[split:]
        if len(tail) == 2 and tail[0] in _ZERO_WORDS and 1 <= _UNITS.get(tail[1], 0) <= 9:
            return head.value * 100 + _UNITS[tail[1]]
        low = _small(tail, 0)
        if low is not None and low.end == len(tail) and not low.ordinal and 10 <= low.value <= 99:
            if not tail[0].isdigit():
                return head.value * 100 + low.value
    return None


# --- parse_quantity --------------------------------------------------------------------------------------

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
    toks = _tokens(text)
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
            num = _small(toks, i)
            if num is None or num.ordinal or (t in _ZERO_WORDS and t != "zero"):
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


# --- parse_dob -------------------------------------------------------------------------------------------

_DOB_WORDS = (
    frozenset(_UNITS) | set(_TENS) | set(_ORD_UNITS) | set(_ORD_TENS) | {"hundred", "thousand", "and"}
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
    num = _small(toks, 0)
    if num is None or num.end != len(toks) or not 1 <= num.value <= 31:
        return None
    return num.value


def _month_number(toks: list[str]) -> int | None:
    num = _small(toks, 0)
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
        year = _year([yy], today)
        if a > 12 >= b:
            a, b = b, a
        return _plausible(year, a, b, today)
    toks = [t for t in _tokens(low) if t in _DOB_WORDS or t in _MONTHS or t in _ZERO_WORDS or t[0].isdigit()]
    toks = [t for t in toks if t not in _MONTHS or t != "may" or len(toks) > 1]
    months = [i for i, t in enumerate(toks) if t in _MONTHS]
    if len(months) == 1:
        at = months[0]
        month = _MONTHS[toks[at]]
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
                born = _plausible(_year(year_toks, today), month, day, today)
                if born is not None:
                    return born
        return None
    if months:
        return None
    toks = [t for t in toks if t != "of"]
    for i in range(1, len(toks)):
        for j in range(i + 1, len(toks)):
            first, second = _month_number(toks[:i]), _day_of_month(toks[i:j])
            year = _year(toks[j:], today)
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


# --- parse_when ------------------------------------------------------------------------------------------

_PARTS: dict[str, tuple[int, int]] = {
    "morning": (8 * 60, 12 * 60),
    "lunchtime": (12 * 60, 14 * 60),
    "lunch": (12 * 60, 14 * 60),
    "afternoon": (12 * 60, 17 * 60),
    "evening": (17 * 60, 20 * 60),
    "night": (20 * 60, DAY),
    "tonight": (17 * 60, DAY),
}
_PARTS.update({k + "s": v for k, v in list(_PARTS.items()) if k not in ("lunch", "tonight")})
_ASAP = (
    ("as", "soon", "as", "possible"),
    ("as", "soon", "as", "you", "can"),
    ("any", "time"),
    ("anytime",),
    ("asap",),
    ("whenever",),
    ("earliest",),
    ("soonest",),
    ("first", "available"),
    ("next", "available"),
    ("right", "away"),
)
_AT_WORDS = frozenset({"at", "around", "about", "by", "for", "say", "approximately"})
_BEFORE_WORDS = frozenset({"before", "by", "until", "till", "til"})
_TO_WORDS = frozenset({"to", "till", "til", "until", "and"})


@dataclass(frozen=True, slots=True)
class _Clock:
    """A clock time as said: ``hour`` as named (1-12, or 0-23 when ``fixed``), minus ``before`` minutes."""

    hour: int
    minute: int
    meridiem: str | None
    fixed: bool = False
    before: int = 0
    bare: bool = False


@dataclass(slots=True)
class _Facts:
    rel_days: int | None = None
    weekday: int | None = None
    weekday_next: bool = False
    day: int | None = None
    month: int | None = None
    year: int | None = None
    week: str | None = None
    asap: bool = False
    offset: timedelta | None = None
    part: tuple[int, int] | None = None
    part_name: str | None = None
    point: _Clock | None = None
    after: _Clock | None = None
    before: _Clock | None = None
    seen: list[str] = field(default_factory=list)


def _meridiem(toks: list[str], k: int) -> tuple[str | None, int]:
    t = toks[k : k + 3]
    if t[:1] in (["am"], ["pm"]):
        return t[0], k + 1
    if t in (["in", "the", "morning"],):
        return "am", k + 3
    if t in (["in", "the", "afternoon"], ["in", "the", "evening"]):
        return "pm", k + 3
    if t[:2] == ["at", "night"]:
        return "pm", k + 2
    return None, k


def _hour(toks: list[str], i: int) -> tuple[int, bool, int] | None:
    """An hour at ``toks[i]``: (hour, fixed, end). Words 1-12, digits 0-23 (0 and 13-23 are fixed)."""
    if i >= len(toks):
        return None
    t = toks[i]
    if t in ("noon", "midday"):
        return 12, True, i + 1
    if t == "midnight":
        return 0, True, i + 1
    if t.isdigit() and len(t) <= 2 and int(t) <= 23:
        h = int(t)
        return h, h == 0 or h > 12, i + 1
    if 1 <= _UNITS.get(t, 0) <= 12:
        return _UNITS[t], False, i + 1
    return None


def _clock(toks: list[str], i: int, after_at: bool) -> tuple[_Clock, int] | None:
    """A clock time at ``toks[i]``; a bare hour ("four") is marked ``bare``."""
    n = len(toks)
    if i >= n:
        return None
    t = toks[i]
    # "half past two", "quarter to eleven", "twenty past three", "ten to four"
    mins: int | None = None
    j = i
    if t == "half":
        mins, j = 30, i + 1
    elif t == "quarter":
        mins, j = 15, i + 1
    else:
        num = _small(toks, i)
        if num is not None and not num.ordinal and 1 <= num.value <= 30 and not t.isdigit():
            mins, j = num.value, num.end
            if j < n and toks[j] in ("minutes", "minute"):
                j += 1
    if mins is not None and j < n:
        rel = toks[j]
        quarter = t == "quarter"
        said_minutes = toks[j - 1] in ("minutes", "minute")
        ok = rel == "past" or (quarter and rel in ("after", "to", "till", "of", "before"))
        ok = ok or (rel == "to" and t != "half" and (after_at or said_minutes))
        hour = _hour(toks, j + 1) if ok else None
        if hour is not None:
            mer, end = _meridiem(toks, hour[2])
            if rel == "past" or rel == "after":
                return _Clock(hour[0], mins, mer, hour[1]), end
            return _Clock(hour[0], 0, mer, hour[1], before=mins), end
    m = _CLOCK_DIGITS.fullmatch(t)
    if m:
        h, mi = int(m.group(1)), int(m.group(2))
        if h > 23 or mi > 59:
            return None
        mer, end = _meridiem(toks, i + 1)
        return _Clock(h, mi, mer, h == 0 or h > 12), end
    hour = _hour(toks, i)
    if hour is None:
        return None
    h, fixed, k = hour
    if t in ("noon", "midday", "midnight"):
        return _Clock(h, 0, None, True), k
    minute = 0
    marked = False
    if k < n and toks[k] == "oclock":
        marked, k = True, k + 1
    elif k + 1 < n and toks[k] in _ZERO_WORDS and 1 <= _UNITS.get(toks[k + 1], 0) <= 9:
        minute, marked, k = _UNITS[toks[k + 1]], True, k + 2
    else:
        num = _small(toks, k)
        if num is not None and not num.ordinal and 10 <= num.value <= 59:
            if t.isdigit() == toks[k].isdigit():
                minute, marked, k = num.value, True, num.end
        elif k < n and toks[k] == "hundred" and not t.isdigit():
            marked, fixed, k = True, True, k + 1
    mer, k = _meridiem(toks, k)
    if mer is not None and h > 12:
        return None
    return _Clock(h, minute, mer, fixed, bare=not marked and mer is None), k


def _resolve(c: _Clock, part: str | None) -> int:
    """Minutes after midnight for ``c``, using the part of the day said with it for a m / p m."""
    if c.fixed:
        h = c.hour
    elif c.meridiem == "am":
        h = c.hour % 12
    elif c.meridiem == "pm":
        h = c.hour % 12 + 12
    elif c.hour == 12:
        h = 12
    elif part in ("morning", "mornings"):
        h = c.hour
    elif part is not None and part not in ("lunch", "lunchtime"):
        h = c.hour + 12
    else:
        h = c.hour + 12 if c.hour <= 7 else c.hour
    return (h * 60 + c.minute - c.before) % DAY


def _match(toks: list[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(toks[i : i + len(phrase)]) == phrase


def _scan(toks: list[str], f: _Facts) -> None:
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < n else ""
        asap = next((p for p in _ASAP if _match(toks, i, p)), None)
        if asap is not None:
            f.asap = True
            i += len(asap)
            continue
        if _match(toks, i, ("day", "after", "tomorrow")):
            f.rel_days, i = 2, i + 3
            continue
        if t in ("today", "tomorrow", "tonight"):
            f.rel_days = 0 if t != "tomorrow" else 1
            if t == "tonight":
                f.part, f.part_name = _PARTS[t], t
            i += 1
            continue
        if t == "in":
            if _match(toks, i, ("in", "half", "an", "hour")):
                f.offset, i = timedelta(minutes=30), i + 4
                continue
            if nxt == "the" and i + 2 < n and toks[i + 2] in _PARTS:
                f.part, f.part_name, i = _PARTS[toks[i + 2]], toks[i + 2], i + 3
                continue
            num = _small(toks, i + 1)
            count, end = (1, i + 2) if nxt in ("a", "an") else (num.value, num.end) if num else (0, i + 1)
            unit = toks[end] if end < n else ""
            if count and not (num and num.ordinal and nxt not in ("a", "an")):
                if unit in ("day", "days"):
                    f.rel_days, i = count, end + 1
                    continue
                if unit in ("week", "weeks"):
                    f.rel_days, i = 7 * count, end + 1
                    continue
                if unit in ("hour", "hours"):
                    f.offset, i = timedelta(hours=count), end + 1
                    continue
                if unit in ("minute", "minutes"):
                    f.offset, i = timedelta(minutes=count), end + 1
                    continue
        if t in ("this", "next", "coming", "following") and nxt:
            if nxt in ("week", "weekend"):
                f.week = ("this " if t == "this" else "next ") + nxt
                i += 2
                continue
            if nxt in _WEEKDAYS:
                f.weekday, f.weekday_next, i = _WEEKDAYS[nxt], t == "next", i + 2
                continue
            if t == "this" and nxt in _PARTS:
                f.rel_days = 0
                f.part, f.part_name, i = _PARTS[nxt], nxt, i + 2
                continue
        if t == "weekend":
            f.week, i = "this weekend", i + 1
            continue
        if t in _WEEKDAYS or (t.endswith("s") and t[:-1] in _WEEKDAYS):
            f.weekday, i = _WEEKDAYS[t.rstrip("s") if t not in _WEEKDAYS else t], i + 1
            continue
        if t in _MONTHS and (t not in ("may", "march") or _small(toks, i + 1)):
            num = _small(toks, i + 1)
            if num is not None and 1 <= num.value <= 31 and _meridiem(toks, num.end)[0] is None:
                if num.end >= n or toks[num.end] not in ("oclock", "thirty", "fifteen", "forty"):
                    f.month, f.day, i = _MONTHS[t], num.value, num.end
                    continue
        day_at = i + 1 if t == "the" else i
        num = _small(toks, day_at)
        if num is not None and num.ordinal and 1 <= num.value <= 31 and (t == "the" or toks[i][0].isdigit()):
            f.day, i = num.value, num.end
            if i < n and toks[i] == "of":
                i += 1
            if i < n and toks[i] in _MONTHS:
                f.month, i = _MONTHS[toks[i]], i + 1
            continue
        if num is not None and not num.ordinal and 1 <= num.value <= 31 and t != "the":
            k = num.end + (num.end < n and toks[num.end] == "of")
            if k < n and toks[k] in _MONTHS and toks[k] not in ("may", "march", "sat", "sun", "wed"):
                f.day, f.month, i = num.value, _MONTHS[toks[k]], k + 1
                continue
        if t in _PARTS:
            f.part, f.part_name, i = _PARTS[t], t, i + 1
            continue
        # ranges
        if t == "between" or t == "from":
            a = _clock(toks, i + 1, False)
            if a is not None and a[1] < n and toks[a[1]] in _TO_WORDS:
                b = _clock(toks, a[1] + 1, False)
                if b is not None:
                    f.after, f.before, i = a[0], b[0], b[1]
                    continue
            if a is not None and t == "from":
                f.after, i = a[0], a[1]
                continue
        if t == "than" and i > 0 and toks[i - 1] in ("later", "earlier"):
            c = _clock(toks, i + 1, True)
            if c is not None:
                negated = i > 1 and toks[i - 2] in ("no", "not")
                if (toks[i - 1] == "later") != negated:
                    f.after = c[0]
                else:
                    f.before = c[0]
                i = c[1]
                continue
        if t == "after" or t in _BEFORE_WORDS:
            c = _clock(toks, i + 1, t == "by")
            if c is not None:
                if t == "after":
                    f.after = c[0]
                else:
                    f.before = c[0]
                i = c[1]
                continue
        c = _clock(toks, i + 1, True) if t in _AT_WORDS else None
        if c is not None:
            if f.point is None:
                f.point = c[0]
            i = c[1]
            continue
        c = _clock(toks, i, False)
        if c is not None:
            if c[1] < n and toks[c[1]] in _TO_WORDS - {"and"}:
                b = _clock(toks, c[1] + 1, False)
                if b is not None and (not c[0].bare or b[0].bare or b[0].meridiem):
                    f.after, f.before, i = c[0], b[0], b[1]
                    continue
            if not c[0].bare:
                if f.point is None:
                    f.point = c[0]
                i = c[1]
                continue
        i += 1


def _time_of_day(f: _Facts) -> tuple[int, int, bool]:
    """The part of a day the facts name: (start minute, end minute, exact)."""
    lo, hi = f.part or (0, DAY)
    if f.point is not None and f.after is None and f.before is None:
        start = _resolve(f.point, f.part_name)
        return start, start + int(EXACT_LENGTH.total_seconds() // 60), True
    if f.after is not None and f.before is not None:
        a, b = f.after, f.before
        start, end = _resolve(a, f.part_name), _resolve(b, f.part_name)
        if b.meridiem and not a.meridiem and not a.fixed:
            guess = _resolve(_Clock(a.hour, a.minute, b.meridiem, before=a.before), None)
            if guess < end:
                start = guess
        if end <= start and not b.meridiem and not b.fixed and end + 12 * 60 <= DAY:
            end += 12 * 60
        if end == 0:
            end = DAY
        return start, max(end, start + 1), False
    if f.after is not None:
        start = _resolve(f.after, f.part_name)
        return start, hi if hi > start else DAY, False
    if f.before is not None:
        end = _resolve(f.before, f.part_name) or DAY
        return (lo if lo < end else 0), end, False
    return lo, hi, False


def _days(f: _Facts, today: date) -> Iterator[date]:
    """Candidate days for the date the facts name, earliest first."""
    if f.month is not None and f.day is not None:
        for y in range(today.year, today.year + 9) if f.year is None else (f.year,):
            try:
                yield date(y, f.month, f.day)
            except ValueError:
                continue
        return
    if f.day is not None:
        y, m = today.year, today.month
        for _ in range(24):
            if f.day <= calendar.monthrange(y, m)[1]:
                yield date(y, m, f.day)
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return
    if f.weekday is not None:
        if f.week == "next week":
            first = today + timedelta(days=7 - today.weekday() + f.weekday)
        elif f.weekday_next:
            sunday = today - timedelta(days=(today.weekday() + 1) % 7)
            first = sunday + timedelta(days=7 + (f.weekday + 1) % 7)
        else:
            first = today + timedelta(days=(f.weekday - today.weekday()) % 7)
        for k in range(_SEARCH_LIMIT // 7):
            yield first + timedelta(days=7 * k)
        return
    first = today + timedelta(days=f.rel_days or 0)
    for k in range(_SEARCH_LIMIT):
        yield first + timedelta(days=k)


def parse_when(text: str, now: datetime) -> Window | None:
    """The time window a caller names ("next tuesday afternoon", "tomorrow at ten", "after four"), or
    ``None`` when the text names no date or time. ``now`` is naive local time; see the module docstring
    for the rules."""
    toks = _tokens(text)
    f = _Facts()
    _scan(toks, f)
    has_date = f.rel_days is not None or f.weekday is not None or f.day is not None or f.week is not None
    has_time = f.part is not None or f.point is not None or f.after is not None or f.before is not None
    if f.offset is not None and not has_date and not has_time:
        start = (now + f.offset).replace(second=0, microsecond=0)
        return Window(start, start + EXACT_LENGTH, True)
    if f.week is not None and f.weekday is None:
        monday = datetime.combine(now.date() - timedelta(days=now.weekday()), time())
        if f.week == "this week":
            start, end = now, monday + timedelta(days=7)
        elif f.week == "next week":
            start, end = monday + timedelta(days=7), monday + timedelta(days=14)
        else:
            saturday = monday + timedelta(days=5)
            if f.week == "next weekend":
                saturday += timedelta(days=7)
            start, end = max(saturday, now), saturday + timedelta(days=2)
        return Window(max(start, now), end, False)
    if not has_date and not has_time:
        return Window(now, now + ASAP_LENGTH, False) if f.asap else None
    lo, hi, exact = _time_of_day(f)
    for d in _days(f, now.date()):
        midnight = datetime.combine(d, time())
        start, end = midnight + timedelta(minutes=lo), midnight + timedelta(minutes=hi)
        if exact and start >= now:
            return Window(start, end, True)
        if not exact and end > now:
            return Window(max(start, now), end, False)
    return None
