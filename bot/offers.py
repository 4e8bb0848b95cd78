"""Callbacks and after hours, as the caller meets them: the request the gateway submits, and how the hours
and the opening time are said.

A callback request goes to the dispatcher (which dials it: agent first, then the customer) through one
function, :func:`submit_callback`: one ``XADD`` to the Redis stream ``attendant:callbacks``
(``telephony.callstate.CALLBACKS_KEY``) with string fields only::

    request     uuid4 hex, the request's id (the dispatcher's idempotency key)
    call        the call id (its context: ``attendant:call:<id>``)
    number      digits to call back
    skill       the skill the caller needs
    queue       the queue they would have waited in
    priority    QUEUE_PRIO, int as text
    entered     when the caller was handed off (unix seconds, float as text): keeps their place
    not_before  unix seconds, "0" = now (after hours: the next opening)
    window_end  unix seconds, "0" = none
    language    the caller's language
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actions.shared.hours import week_hours
from actions.shared.numerals import WEEKDAYS, number_words
from actions.shared.speech import say_time
from telephony.callstate import CALLBACKS_KEY


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """One callback the caller asked for (see the module docstring for the stream's fields)."""

    call: str
    number: str
    skill: str
    queue: str
    priority: int
    entered: float
    not_before: float = 0.0
    window_end: float = 0.0
    language: str = "en"
    request: str = ""
    """Filled in by :func:`submit_callback` when empty."""

    def fields(self) -> dict[str, str]:
        return {
            "request": self.request,
            "call": self.call,
            "number": self.number,
            "skill": self.skill,
            "queue": self.queue,
            "priority": str(int(self.priority)),
            "entered": repr(float(self.entered)),
            "not_before": "0" if not self.not_before else repr(float(self.not_before)),
            "window_end": "0" if not self.window_end else repr(float(self.window_end)),
            "language": self.language,
        }


async def submit_callback(redis: Any, request: CallbackRequest) -> str:
    """Submit ``request`` to the dispatcher; returns the request id. Raises what Redis raises."""
    if not request.number.isdigit():
        raise ValueError("a callback number is digits only")
    rid = request.request or uuid.uuid4().hex
    fields = {**request.fields(), "request": rid}
    await redis.xadd(CALLBACKS_KEY, fields)
    return rid


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
