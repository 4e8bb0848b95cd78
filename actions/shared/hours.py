"""A branch's (and so a phone line's) week of opening hours, as said: one place for the information answer
(:mod:`actions.info`) and the gateway's after-hours words (:mod:`bot.offers`). Pure: any object with
``hours_on(weekday)`` returning ``opens``/``closes`` times (``actions.backends.base.Branch``) will do."""

from __future__ import annotations

from datetime import time
from typing import Any, Protocol

from actions.shared.numerals import WEEKDAYS
from actions.shared.speech import say_time


class OpeningHours(Protocol):
    @property
    def opens(self) -> time: ...

    @property
    def closes(self) -> time: ...


class Branch(Protocol):
    def hours_on(self, weekday: int) -> Any: ...


def _span(h: OpeningHours) -> str:
    return f"{say_time(h.opens)} to {say_time(h.closes)}"


def week_hours(b: Branch) -> str:
    """A branch's week as a spoken list: "Monday to Friday nine a m to five thirty p m, and Saturday ten a m
    to two p m" (days with the same hours run together); empty when it is closed all week."""
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
    parts = []
    for first, last, h in groups:
        days = (
            WEEKDAYS[first]
            if first == last
            else f"{WEEKDAYS[first]} {'and' if last == first + 1 else 'to'} {WEEKDAYS[last]}"
        )
        parts.append(f"{days} {_span(h)}")
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]
