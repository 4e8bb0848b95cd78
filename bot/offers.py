"""Callbacks and after hours, as the caller meets them: how the number, the hours and the opening time are
said. The request itself goes to the dispatcher through :func:`bot.callbacks.submit` (the contract is in
:mod:`bot.callbacks.requests`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actions.shared.hours import week_hours
from actions.shared.numerals import WEEKDAYS, number_words
from actions.shared.speech import say_time


def spoken_digits(digits: str) -> str:
    """ "5550100" -> "five, five, five, zero, one, zero, zero": read back one digit at a time."""
    return ", ".join(number_words(int(d)) for d in digits if d.isdigit())


def said_hours(line: Any) -> str:
    """The week of a line (``actions.backends.base.PhoneLine``, from the store) as said: "Monday to Friday
    nine a m to five thirty p m, and Saturday ..."."""
    return week_hours(line.branch)


def said_opening(now: datetime, opens: datetime) -> str:
    """When the line opens next, as said after "we open": "today at nine a m", "tomorrow at ...", "on
    Monday at ..." (both times in the line's zone)."""
    ahead = (opens.date() - now.date()).days
    day = "today" if ahead == 0 else "tomorrow" if ahead == 1 else f"on {WEEKDAYS[opens.weekday()]}"
    return f"{day} at {say_time(opens.time())}"
