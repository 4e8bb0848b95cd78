"""Dates and times as callers say them, for bookings and callback windows: :func:`parse_when`.

The input is what the recogniser writes: lower case, no punctuation, numbers as words ("ten thirty"),
fillers around ("um can i come in next tuesday afternoon please"). Typed forms ("10:30", "3pm",
"24th", "1990-12-10") are accepted too. Everything here is pure: the caller passes ``now``. (Quantities
are in :mod:`actions.shared.numerals`, dates of birth in :mod:`actions.shared.dob`.)

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from actions.shared.numerals import MONTH_NUMBERS, UNITS, WEEKDAY_NUMBERS, ZERO_WORDS, number_at, tokens

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
_CLOCK_DIGITS = re.compile(r"(\d{1,2}):(\d{2})")
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
    if 1 <= UNITS.get(t, 0) <= 12:
        return UNITS[t], False, i + 1
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
        num = number_at(toks, i)
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
    elif k + 1 < n and toks[k] in ZERO_WORDS and 1 <= UNITS.get(toks[k + 1], 0) <= 9:
        minute, marked, k = UNITS[toks[k + 1]], True, k + 2
    else:
        num = number_at(toks, k)
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


# What the caller said, read one phrase at a time: each reader looks at ``toks[i]``, and when the phrase there
# is its kind it records it in the facts and returns the index after it; otherwise it returns ``None`` and
# changes nothing. The first reader that takes the phrase wins (the order below matters).

_Reader = Callable[[list[str], int, _Facts], int | None]


def _word(toks: list[str], i: int) -> str:
    return toks[i] if i < len(toks) else ""


def _read_asap(toks: list[str], i: int, f: _Facts) -> int | None:
    asap = next((p for p in _ASAP if _match(toks, i, p)), None)
    if asap is None:
        return None
    f.asap = True
    return i + len(asap)


def _read_relative_day(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "the day after tomorrow", "today", "tomorrow", "tonight"."""
    t = toks[i]
    if _match(toks, i, ("day", "after", "tomorrow")):
        f.rel_days = 2
        return i + 3
    if t in ("today", "tomorrow", "tonight"):
        f.rel_days = 0 if t != "tomorrow" else 1
        if t == "tonight":
            f.part, f.part_name = _PARTS[t], t
        return i + 1
    return None


def _read_in(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "in half an hour", "in the afternoon", "in two days", "in a week", "in twenty minutes"."""
    if toks[i] != "in":
        return None
    nxt = _word(toks, i + 1)
    if _match(toks, i, ("in", "half", "an", "hour")):
        f.offset = timedelta(minutes=30)
        return i + 4
    if nxt == "the" and _word(toks, i + 2) in _PARTS:
        f.part, f.part_name = _PARTS[toks[i + 2]], toks[i + 2]
        return i + 3
    num = number_at(toks, i + 1)
    count, end = (1, i + 2) if nxt in ("a", "an") else (num.value, num.end) if num else (0, i + 1)
    unit = _word(toks, end)
    if not count or (num and num.ordinal and nxt not in ("a", "an")):
        return None
    if unit in ("day", "days"):
        f.rel_days = count
    elif unit in ("week", "weeks"):
        f.rel_days = 7 * count
    elif unit in ("hour", "hours"):
        f.offset = timedelta(hours=count)
    elif unit in ("minute", "minutes"):
        f.offset = timedelta(minutes=count)
    else:
        return None
    return end + 1


def _read_this_or_next(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "this week", "next weekend", "next tuesday", "coming friday", "this afternoon"."""
    t, nxt = toks[i], _word(toks, i + 1)
    if t not in ("this", "next", "coming", "following") or not nxt:
        return None
    if nxt in ("week", "weekend"):
        f.week = ("this " if t == "this" else "next ") + nxt
        return i + 2
    if nxt in WEEKDAY_NUMBERS:
        f.weekday, f.weekday_next = WEEKDAY_NUMBERS[nxt], t == "next"
        return i + 2
    if t == "this" and nxt in _PARTS:
        f.rel_days = 0
        f.part, f.part_name = _PARTS[nxt], nxt
        return i + 2
    return None


def _read_weekday(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "weekend", "tuesday", "tuesdays"."""
    t = toks[i]
    if t == "weekend":
        f.week = "this weekend"
        return i + 1
    if t in WEEKDAY_NUMBERS or (t.endswith("s") and t[:-1] in WEEKDAY_NUMBERS):
        f.weekday = WEEKDAY_NUMBERS[t.rstrip("s") if t not in WEEKDAY_NUMBERS else t]
        return i + 1
    return None


def _read_month_day(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "november twenty fourth", "dec 3" (not "march" or "may" alone, not "june ten thirty")."""
    t = toks[i]
    if t not in MONTH_NUMBERS or (t in ("may", "march") and not number_at(toks, i + 1)):
        return None
    num = number_at(toks, i + 1)
    if num is None or not 1 <= num.value <= 31 or _meridiem(toks, num.end)[0] is not None:
        return None
    if _word(toks, num.end) in ("oclock", "thirty", "fifteen", "forty"):
        return None
    f.month, f.day = MONTH_NUMBERS[t], num.value
    return num.end


def _read_day_of_month(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "the twenty fourth [of november]", "24th", "twenty four november", "3 of dec"."""
    t = toks[i]
    num = number_at(toks, i + 1 if t == "the" else i)
    if num is None or not 1 <= num.value <= 31:
        return None
    if num.ordinal and (t == "the" or t[0].isdigit()):
        f.day, i = num.value, num.end
        if _word(toks, i) == "of":
            i += 1
        if _word(toks, i) in MONTH_NUMBERS:
            f.month, i = MONTH_NUMBERS[toks[i]], i + 1
        return i
    if not num.ordinal and t != "the":
        k = num.end + (_word(toks, num.end) == "of")
        month = _word(toks, k)
        if month in MONTH_NUMBERS and month not in ("may", "march", "sat", "sun", "wed"):
            f.day, f.month = num.value, MONTH_NUMBERS[month]
            return k + 1
    return None


def _read_part_of_day(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "morning", "afternoons", "lunchtime"."""
    if toks[i] not in _PARTS:
        return None
    f.part, f.part_name = _PARTS[toks[i]], toks[i]
    return i + 1


def _read_range(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "between two and four", "from ten to twelve", "from nine"."""
    t = toks[i]
    if t not in ("between", "from"):
        return None
    a = _clock(toks, i + 1, False)
    if a is not None and _word(toks, a[1]) in _TO_WORDS:
        b = _clock(toks, a[1] + 1, False)
        if b is not None:
            f.after, f.before = a[0], b[0]
            return b[1]
    if a is not None and t == "from":
        f.after = a[0]
        return a[1]
    return None


def _read_than(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "later than four", "no earlier than ten"."""
    if toks[i] != "than" or i == 0 or toks[i - 1] not in ("later", "earlier"):
        return None
    c = _clock(toks, i + 1, True)
    if c is None:
        return None
    negated = i > 1 and toks[i - 2] in ("no", "not")
    if (toks[i - 1] == "later") != negated:
        f.after = c[0]
    else:
        f.before = c[0]
    return c[1]


def _read_after_or_before(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "after four", "before eleven", "by noon", "until five"."""
    t = toks[i]
    if t != "after" and t not in _BEFORE_WORDS:
        return None
    c = _clock(toks, i + 1, t == "by")
    if c is None:
        return None
    if t == "after":
        f.after = c[0]
    else:
        f.before = c[0]
    return c[1]


def _read_at(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "at ten", "around half past two", "about three p m" (the first time said counts)."""
    if toks[i] not in _AT_WORDS:
        return None
    c = _clock(toks, i + 1, True)
    if c is None:
        return None
    if f.point is None:
        f.point = c[0]
    return c[1]


def _read_time(toks: list[str], i: int, f: _Facts) -> int | None:
    """ "ten thirty", "3pm", "two to four p m" (a range); a bare hour alone is not a time."""
    c = _clock(toks, i, False)
    if c is None:
        return None
    if _word(toks, c[1]) in _TO_WORDS - {"and"}:
        b = _clock(toks, c[1] + 1, False)
        if b is not None and (not c[0].bare or b[0].bare or b[0].meridiem):
            f.after, f.before = c[0], b[0]
            return b[1]
    if c[0].bare:
        return None
    if f.point is None:
        f.point = c[0]
    return c[1]


_READERS: tuple[_Reader, ...] = (
    _read_asap,
    _read_relative_day,
    _read_in,
    _read_this_or_next,
    _read_weekday,
    _read_month_day,
    _read_day_of_month,
    _read_part_of_day,
    _read_range,
    _read_than,
    _read_after_or_before,
    _read_at,
    _read_time,
)


def _scan(toks: list[str], f: _Facts) -> None:
    """Read every phrase in ``toks`` into ``f``; words no reader takes are skipped."""
    i = 0
    while i < len(toks):
        i = next((j for read in _READERS if (j := read(toks, i, f)) is not None), i + 1)


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
    toks = tokens(text)
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


def window_slot(window: Window) -> str:
    """A time window as a slot keeps it: ``start|end`` in ISO format."""
    return f"{window.start.isoformat()}|{window.end.isoformat()}"


def window_from_slot(value: object) -> Window | None:
    """The window :func:`window_slot` wrote, or ``None`` for anything else."""
    try:
        start_text, end_text = str(value).split("|")
        return Window(datetime.fromisoformat(start_text), datetime.fromisoformat(end_text), False)
    except ValueError:
        return None
