"""Spoken dates, times and quantities (actions/shared/when.py, dob.py, numerals.py), table-driven against a
fixed ``now``."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from actions.shared.dob import parse_dob
from actions.shared.numerals import parse_quantity
from actions.shared.when import Window, parse_when

MONDAY = datetime(2026, 11, 23, 9, 15)  # Monday 23 November 2026, 09:15
MONDAY_EVENING = datetime(2026, 11, 23, 18, 0)
SUNDAY = datetime(2026, 11, 22, 10, 0)
TUESDAY = datetime(2026, 11, 24, 10, 0)
TODAY = date(2026, 11, 23)


def w(start: str, end: str, exact: bool = False) -> Window:
    """A window from "MM-DD HH:MM" strings in 2026 (or "YYYY-MM-DD HH:MM")."""

    def at(s: str) -> datetime:
        return datetime.fromisoformat(s if s[:4].isdigit() and len(s) > 11 else f"2026-{s}")

    return Window(at(start), at(end), exact)


def exact(start: str, end: str) -> Window:
    return w(start, end, True)


MONDAY_CASES = [
    # exact clock times; hours 1-7 are p m, 8-11 a m, 12 noon
    ("tomorrow at ten", exact("11-24 10:00", "11-24 11:00")),
    ("at three thirty", exact("11-23 15:30", "11-23 16:30")),
    ("half past two", exact("11-23 14:30", "11-23 15:30")),
    ("quarter to eleven", exact("11-23 10:45", "11-23 11:45")),
    ("quarter after three", exact("11-23 15:15", "11-23 16:15")),
    ("twenty past three", exact("11-23 15:20", "11-23 16:20")),
    ("five minutes to four", exact("11-23 15:55", "11-23 16:55")),
    ("at ten to four", exact("11-23 15:50", "11-23 16:50")),
    ("ten thirty am", exact("11-23 10:30", "11-23 11:30")),
    ("ten thirty a m", exact("11-23 10:30", "11-23 11:30")),
    ("ten thirty", exact("11-23 10:30", "11-23 11:30")),
    ("nine oh five", exact("11-24 09:05", "11-24 10:05")),  # past today: tomorrow
    ("noon", exact("11-23 12:00", "11-23 13:00")),
    ("at midnight", exact("11-24 00:00", "11-24 01:00")),
    ("at twelve thirty", exact("11-23 12:30", "11-23 13:30")),
    ("at two", exact("11-23 14:00", "11-23 15:00")),
    ("around eight", exact("11-24 08:00", "11-24 09:00")),
    ("at seven in the morning", exact("11-24 07:00", "11-24 08:00")),
    ("at ten o'clock", exact("11-23 10:00", "11-23 11:00")),
    ("ten oclock", exact("11-23 10:00", "11-23 11:00")),
    ("3pm", exact("11-23 15:00", "11-23 16:00")),
    ("10:30", exact("11-23 10:30", "11-23 11:30")),
    ("at 14:00", exact("11-23 14:00", "11-23 15:00")),
    ("10:30am on friday", exact("11-27 10:30", "11-27 11:30")),
    ("ten a m tomorrow", exact("11-24 10:00", "11-24 11:00")),
    ("tomorrow morning at seven", exact("11-24 07:00", "11-24 08:00")),
    ("this evening at eight", exact("11-23 20:00", "11-23 21:00")),
    ("next friday at 9:30 in the morning", exact("12-04 09:30", "12-04 10:30")),
    ("today at nine", exact("11-24 09:00", "11-24 10:00")),  # already past: rolls to tomorrow
    ("the 24th at 3 pm", exact("11-24 15:00", "11-24 16:00")),
    ("the twenty fourth at quarter to eleven", exact("11-24 10:45", "11-24 11:45")),
    ("in two hours", exact("11-23 11:15", "11-23 12:15")),
    ("in half an hour", exact("11-23 09:45", "11-23 10:45")),
    # days and parts of days
    ("next tuesday afternoon", w("12-01 12:00", "12-01 17:00")),
    ("um can i come in next tuesday afternoon please", w("12-01 12:00", "12-01 17:00")),
    ("tuesday", w("11-24 00:00", "11-25 00:00")),
    ("on tuesday please", w("11-24 00:00", "11-25 00:00")),
    ("this tuesday", w("11-24 00:00", "11-25 00:00")),
    ("next monday", w("11-30 00:00", "12-01 00:00")),
    ("next friday", w("12-04 00:00", "12-05 00:00")),
    ("tuesday next week", w("12-01 00:00", "12-02 00:00")),
    ("monday morning", w("11-23 09:15", "11-23 12:00")),  # today's morning, under way
    ("monday", w("11-23 09:15", "11-24 00:00")),
    ("this afternoon", w("11-23 12:00", "11-23 17:00")),
    ("this evening", w("11-23 17:00", "11-23 20:00")),
    ("tonight", w("11-23 17:00", "11-24 00:00")),
    ("tomorrow night", w("11-24 20:00", "11-25 00:00")),
    ("lunchtime tomorrow", w("11-24 12:00", "11-24 14:00")),
    ("today", w("11-23 09:15", "11-24 00:00")),
    ("in the morning", w("11-23 09:15", "11-23 12:00")),
    ("the day after tomorrow", w("11-25 00:00", "11-26 00:00")),
    ("day after tomorrow in the afternoon", w("11-25 12:00", "11-25 17:00")),
    ("in two days", w("11-25 00:00", "11-26 00:00")),
    ("in a week", w("11-30 00:00", "12-01 00:00")),
    # dates
    ("the twenty fourth", w("11-24 00:00", "11-25 00:00")),
    ("november twenty fourth", w("11-24 00:00", "11-25 00:00")),
    ("november twenty four", w("11-24 00:00", "11-25 00:00")),
    ("the twenty third", w("11-23 09:15", "11-24 00:00")),  # today is the 23rd: the rest of today
    ("the twenty third in the morning", w("11-23 09:15", "11-23 12:00")),
    ("the twenty third at nine", exact("12-23 09:00", "12-23 10:00")),  # past today: next month
    ("the thirty first", w("12-31 00:00", "2027-01-01 00:00")),  # November has no 31st
    ("24th of december", w("12-24 00:00", "12-25 00:00")),
    ("the tenth of december in the morning", w("12-10 08:00", "12-10 12:00")),
    ("november twentieth", w("2027-11-20 00:00", "2027-11-21 00:00")),
    ("tuesday the first", w("12-01 00:00", "12-02 00:00")),
    # ranges
    ("after four", w("11-23 16:00", "11-24 00:00")),
    ("before eleven", w("11-23 09:15", "11-23 11:00")),
    ("between two and four", w("11-23 14:00", "11-23 16:00")),
    ("between 2 and 4 pm", w("11-23 14:00", "11-23 16:00")),
    ("between eleven and one", w("11-23 11:00", "11-23 13:00")),
    ("between seven and nine", w("11-23 19:00", "11-23 21:00")),
    ("from nine to five", w("11-23 09:15", "11-23 17:00")),
    ("ten to four", w("11-23 10:00", "11-23 16:00")),  # no "at": a range
    ("no later than five", w("11-23 09:15", "11-23 17:00")),
    ("after four tomorrow", w("11-24 16:00", "11-25 00:00")),
    ("tomorrow afternoon after two", w("11-24 14:00", "11-24 17:00")),
    ("this afternoon before three", w("11-23 12:00", "11-23 15:00")),
    # weeks and "whenever"
    ("next week", w("11-30 00:00", "12-07 00:00")),
    ("sometime this week", w("11-23 09:15", "11-30 00:00")),
    ("this weekend", w("11-28 00:00", "11-30 00:00")),
    ("any time", w("11-23 09:15", "12-07 09:15")),
    ("as soon as possible", w("11-23 09:15", "12-07 09:15")),
    ("uh whenever", w("11-23 09:15", "12-07 09:15")),
    ("earliest you have", w("11-23 09:15", "12-07 09:15")),
    ("first available", w("11-23 09:15", "12-07 09:15")),
    ("whenever tomorrow", w("11-24 00:00", "11-25 00:00")),
    ("yeah um at nine thirty tomorrow please", exact("11-24 09:30", "11-24 10:30")),
    # no date or time
    ("yes please", None),
    ("one two three four", None),
    ("three of them", None),
    ("just a second", None),
    ("may i speak to someone", None),
    ("", None),
    ("um", None),
    ("february thirtieth", None),
]


@pytest.mark.parametrize(("text", "window"), MONDAY_CASES)
def test_parse_when_on_monday_morning(text: str, window: Window | None) -> None:
    assert parse_when(text, MONDAY) == window


EVENING_CASES = [
    ("this afternoon", w("11-24 12:00", "11-24 17:00")),  # over: the next afternoon
    ("this evening", w("11-23 18:00", "11-23 20:00")),
    ("today", w("11-23 18:00", "11-24 00:00")),
    ("in the morning", w("11-24 08:00", "11-24 12:00")),
    ("at three thirty", exact("11-24 15:30", "11-24 16:30")),
    ("noon", exact("11-24 12:00", "11-24 13:00")),
    ("after four", w("11-23 18:00", "11-24 00:00")),
    ("before eleven", w("11-24 00:00", "11-24 11:00")),
    ("monday morning", w("11-30 08:00", "11-30 12:00")),  # this Monday's is over: next week's
    ("at seven", exact("11-23 19:00", "11-23 20:00")),
    ("this week", w("11-23 18:00", "11-30 00:00")),
]


@pytest.mark.parametrize(("text", "window"), EVENING_CASES)
def test_parse_when_on_monday_evening(text: str, window: Window | None) -> None:
    assert parse_when(text, MONDAY_EVENING) == window


SUNDAY_CASES = [
    ("next tuesday", w("12-01 00:00", "12-02 00:00")),  # said on Sunday: not the day after tomorrow
    ("tuesday", w("11-24 00:00", "11-25 00:00")),
    ("next week", w("11-23 00:00", "11-30 00:00")),
    ("tuesday next week", w("11-24 00:00", "11-25 00:00")),
    ("next sunday", w("11-29 00:00", "11-30 00:00")),
    ("sunday", w("11-22 10:00", "11-23 00:00")),
    ("this weekend", w("11-22 10:00", "11-23 00:00")),
    ("monday morning at nine", exact("11-23 09:00", "11-23 10:00")),
]


@pytest.mark.parametrize(("text", "window"), SUNDAY_CASES)
def test_parse_when_on_sunday(text: str, window: Window | None) -> None:
    assert parse_when(text, SUNDAY) == window


TUESDAY_CASES = [
    ("next tuesday", w("12-01 00:00", "12-02 00:00")),
    ("tuesday", w("11-24 10:00", "11-25 00:00")),  # today, while it lasts
    ("tuesday morning", w("11-24 10:00", "11-24 12:00")),
    ("next thursday", w("12-03 00:00", "12-04 00:00")),  # the Thursday of next week
    ("the 24th", w("11-24 10:00", "11-25 00:00")),
    ("november twenty third", w("2027-11-23 00:00", "2027-11-24 00:00")),
]


@pytest.mark.parametrize(("text", "window"), TUESDAY_CASES)
def test_parse_when_on_tuesday(text: str, window: Window | None) -> None:
    assert parse_when(text, TUESDAY) == window


@pytest.mark.parametrize("now", [MONDAY, MONDAY_EVENING, SUNDAY, TUESDAY, datetime(2026, 12, 31, 23, 59, 30)])
def test_windows_never_start_before_now(now: datetime) -> None:
    for text, _ in MONDAY_CASES + EVENING_CASES + SUNDAY_CASES + TUESDAY_CASES:
        window = parse_when(text, now)
        if window is not None:
            assert now <= window.start < window.end, text


DOB_CASES = [
    ("december tenth eighteen fifteen", date(1815, 12, 10)),
    ("the tenth of december eighteen fifteen", date(1815, 12, 10)),
    ("ten december nineteen ninety", date(1990, 12, 10)),
    ("twelve ten nineteen ninety", date(1990, 12, 10)),  # US: month, day, year
    ("thirty one twelve nineteen ninety", date(1990, 12, 31)),  # 31 cannot be a month
    ("1815-12-10", date(1815, 12, 10)),
    ("12/10/1815", date(1815, 12, 10)),
    ("13/12/1990", date(1990, 12, 13)),
    ("nineteen eighty four march third", date(1984, 3, 3)),
    ("march three two thousand and one", date(2001, 3, 3)),
    ("uh it's december tenth nineteen ninety", date(1990, 12, 10)),
    ("june fifth twenty oh five", date(2005, 6, 5)),
    ("march third twenty twenty", date(2020, 3, 3)),
    ("the first of may nineteen hundred", date(1900, 5, 1)),
    ("the fourth of july nineteen seventy six", date(1976, 7, 4)),
    ("may fifth nineteen seventy", date(1970, 5, 5)),
    ("5 may 1970", date(1970, 5, 5)),
    ("oct 3 1962", date(1962, 10, 3)),
    ("april first ninety", date(1990, 4, 1)),
    ("february twenty ninth two thousand", date(2000, 2, 29)),
    ("february twenty ninth nineteen ninety", None),  # not a leap year
    ("december tenth twenty ninety", None),  # in the future
    ("november twenty fourth twenty twenty six", None),  # tomorrow
    ("march third seventeen ninety nine", None),  # before 1800
    ("december tenth", None),  # no year
    ("twelve ten", None),
    ("one two three four", None),
    ("hello", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "born"), DOB_CASES)
def test_parse_dob(text: str, born: date | None) -> None:
    assert parse_dob(text, today=TODAY) == born


def test_parse_dob_defaults_to_the_real_today() -> None:
    assert parse_dob("march third nineteen eighty four") == date(1984, 3, 3)
    assert parse_dob("march third twenty ninety nine") is None


QUANTITY_CASES = [
    ("two", 2),
    ("a couple of", 2),
    ("i need a couple please", 2),
    ("three of them", 3),
    ("5", 5),
    ("a", 1),
    ("one", 1),
    ("just one please", 1),
    ("um four", 4),
    ("twenty five", 25),
    ("thirty seven tickets", 37),
    ("a dozen", 12),
    ("half a dozen", 6),
    ("a pair", 2),
    ("a hundred", None),  # out of range
    ("100", None),
    ("none", None),
    ("zero", None),
    ("a few", None),
    ("two adults and one child", None),  # more than one number: ambiguous
    ("one two three four", None),
    ("yes please", None),
    ("uh", None),
]


@pytest.mark.parametrize(("text", "count"), QUANTITY_CASES)
def test_parse_quantity(text: str, count: int | None) -> None:
    assert parse_quantity(text) == count
