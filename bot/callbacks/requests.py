"""A callback request: the contract between the caller side (the bot offers and takes the callback) and the
dispatcher (:mod:`bot.callbacks.dispatcher`), its settings, and the calling hours.

The contract: one ``XADD`` to the Redis stream ``attendant:callbacks`` per request, string fields::

    request     uuid4 hex, the request id (also the Originate ChannelId)
    call        the originating call's id (its context: attendant:call:<call>, bot/calls.py)
    number      digits to dial: "+" and 3-20 digits (nothing else ever reaches the dialplan)
    skill       e.g. billing
    queue       e.g. attendant-billing
    priority    QUEUE_PRIO, an int as text
    entered     when the caller entered the queue, unix seconds (float as text): keeps the caller's place
    not_before  unix seconds; "0" = now
    window_end  unix seconds; "0" = none
    language    e.g. en

:func:`submit` writes the stream entry and the request's state hash (``new``) in one ``MULTI``, so the
request exists exactly when its entry does. A bare ``XADD`` with these fields works too: the dispatcher then
creates the hash (``created`` = the time in the entry's id) when it first takes the entry.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from telephony.callstate import CALLBACKS_KEY

STREAM_KEY = CALLBACKS_KEY
GROUP = "attendant-dispatch"
STATE_PREFIX = "attendant:callback:"
NUMBER = re.compile(r"\+?[0-9]{3,20}")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
QUEUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CallbackError(ValueError):
    """A request that breaks the contract (a field missing or malformed)."""


def state_key(request: str, prefix: str = STATE_PREFIX) -> str:
    """The request's state hash."""
    return f"{prefix}{request}"


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """One request, as the stream entry carries it."""

    request: str
    call: str
    number: str
    """Personal data: never log it."""
    skill: str
    queue: str
    priority: int
    entered: float
    """Unix seconds the caller entered the queue (their place)."""
    not_before: float = 0.0
    window_end: float = 0.0
    """Unix seconds; 0 = no end."""
    language: str = "en"

    def __post_init__(self) -> None:
        if not REQUEST_ID.fullmatch(self.request):
            raise CallbackError("request: not a uuid4 hex")
        if not NUMBER.fullmatch(self.number):
            raise CallbackError("number: not '+' and 3-20 digits")
        if not QUEUE.fullmatch(self.queue):
            raise CallbackError("queue: not a queue name")
        if not CALL_ID.fullmatch(self.call):
            raise CallbackError("call: not a call id")
        if self.language and not re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", self.language):
            raise CallbackError("language: not a language code")

    def fields(self) -> dict[str, str]:
        return {
            "request": self.request,
            "call": self.call,
            "number": self.number,
            "skill": self.skill,
            "queue": self.queue,
            "priority": str(self.priority),
            "entered": f"{self.entered:.3f}",
            "not_before": f"{self.not_before:.3f}" if self.not_before else "0",
            "window_end": f"{self.window_end:.3f}" if self.window_end else "0",
            "language": self.language,
        }

    @classmethod
    def parse(cls, raw: Mapping[Any, Any]) -> CallbackRequest:
        """From a stream entry's (or state hash's) fields; :class:`CallbackError` when malformed."""
        f = {_s(k): _s(v) for k, v in raw.items()}
        try:
            return cls(
                request=f["request"],
                call=f["call"],
                number=f["number"],
                skill=f.get("skill", "general"),
                queue=f["queue"],
                priority=int(f.get("priority") or 0),
                entered=float(f["entered"]),
                not_before=float(f.get("not_before") or 0),
                window_end=float(f.get("window_end") or 0),
                language=f.get("language") or "en",
            )
        except KeyError as exc:
            raise CallbackError(f"{exc.args[0]}: missing") from None
        except ValueError as exc:
            if isinstance(exc, CallbackError):
                raise
            raise CallbackError("a number field is not a number") from None


async def submit(
    redis: Any,
    *,
    call: str,
    number: str,
    skill: str,
    queue: str,
    priority: int,
    entered: float,
    not_before: float = 0.0,
    window_end: float = 0.0,
    language: str = "en",
    request: str | None = None,
    stream: str = STREAM_KEY,
    state_prefix: str = STATE_PREFIX,
    now: Callable[[], float] = time.time,
) -> CallbackRequest:
    """Store a callback request (stream entry and ``new`` state hash, atomically); returns it."""
    req = CallbackRequest(
        request=request or uuid.uuid4().hex,
        call=call,
        number=number,
        skill=skill,
        queue=queue,
        priority=int(priority),
        entered=float(entered),
        not_before=float(not_before),
        window_end=float(window_end),
        language=language,
    )
    fields = req.fields()
    pipe = redis.pipeline(transaction=True)
    pipe.hsetnx(state_key(req.request, state_prefix), "state", "new")
    pipe.hset(
        state_key(req.request, state_prefix),
        mapping={**fields, "attempt": "0", "created": f"{now():.3f}"},
    )
    pipe.xadd(stream, fields)
    await pipe.execute()
    return req


# --- calling hours -----------------------------------------------------------------------------------


class Opening(Protocol):
    """When a callback may be dialled (the store-backed opening hours implement it)."""

    def is_open(self, t: float) -> bool: ...

    def next_open(self, t: float) -> float:
        """The first moment at or after ``t`` that is open (unix seconds)."""


class AlwaysOpen:
    """The default: no opening hours configured."""

    def is_open(self, t: float) -> bool:
        return True

    def next_open(self, t: float) -> float:
        return t


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Opening hours minus a daily quiet time ``start``-``end`` (local ``HH:MM``; may cross midnight)."""

    opening: Opening
    start_min: int
    end_min: int
    tz: ZoneInfo

    @classmethod
    def parse(cls, opening: Opening, spec: str, tz: str = "UTC") -> Opening:
        """``"21:00-08:00"``; empty = no quiet time (``opening`` as is)."""
        if not spec.strip():
            return opening
        m = re.fullmatch(r"\s*(\d\d):(\d\d)\s*-\s*(\d\d):(\d\d)\s*", spec)
        if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
            raise CallbackError(f"quiet time {spec!r}: expected HH:MM-HH:MM")
        return cls(opening, int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4]), ZoneInfo(tz))

    def quiet(self, t: float) -> bool:
        local = datetime.fromtimestamp(t, self.tz)
        minute = local.hour * 60 + local.minute
        if self.start_min <= self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min

    def is_open(self, t: float) -> bool:
        return not self.quiet(t) and self.opening.is_open(t)

    def next_open(self, t: float) -> float:
        for _ in range(14 * 24 * 60):  # minute steps over two weeks at most
            t = self.opening.next_open(t)
            if not self.quiet(t):
                return t
            local = datetime.fromtimestamp(t, self.tz).replace(second=0, microsecond=0)
            t = (local + timedelta(minutes=1)).timestamp()
        return t


# --- settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """The dispatcher's settings (``ATTENDANT_CALLBACK_*``, README "Callbacks")."""

    attempts: int = 3
    """Dial attempts before giving up."""
    retry_s: float = 300.0
    """Back-off between attempts."""
    expiry_s: float = 86400.0
    """A request not connected this long after it was made expires."""
    agent_ring_s: float = 60.0
    """Originate ``Timeout``: how long the agent side may take to answer."""
    outcome_s: float = 300.0
    """A dial attempt with no outcome seen this long after it started is closed as ``outcome-unknown``
    (never dialled again: it may have happened)."""
    reclaim_idle_s: float = 60.0
    """``XAUTOCLAIM`` min idle: a dead gateway's requests are taken over after this long."""
    poll_s: float = 1.0
    max_penalty: int = 4
    quiet: str = ""
    """Daily quiet time, ``HH:MM-HH:MM`` in :attr:`tz` (empty: none)."""
    tz: str = "UTC"
    caller_id: str = ""
    """Caller id shown to the customer (``"Company" <+15550100>``); empty: the trunk's."""

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.retry_s < 0 or self.expiry_s <= 0 or self.agent_ring_s <= 0:
            raise CallbackError("callback settings out of range")
        if self.outcome_s < self.agent_ring_s:
            raise CallbackError("ATTENDANT_CALLBACK_OUTCOME_S must be at least the agent ring time")
        QuietHours.parse(AlwaysOpen(), self.quiet, self.tz)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CallbackSettings:
        e = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            raw = e.get(f"ATTENDANT_CALLBACK_{name}", "")
            try:
                return float(raw) if raw else default
            except ValueError:
                raise CallbackError(f"ATTENDANT_CALLBACK_{name}={raw!r} is not a number") from None

        return cls(
            attempts=int(num("ATTEMPTS", 3)),
            retry_s=num("RETRY_S", 300),
            expiry_s=num("EXPIRY_S", 86400),
            agent_ring_s=num("AGENT_RING_S", 60),
            outcome_s=num("OUTCOME_S", 300),
            reclaim_idle_s=num("RECLAIM_S", 60),
            poll_s=num("POLL_S", 1),
            max_penalty=int(num("MAX_PENALTY", 4)),
            quiet=e.get("ATTENDANT_CALLBACK_QUIET", ""),
            tz=e.get("ATTENDANT_CALLBACK_TZ", "UTC"),
            caller_id=e.get("ATTENDANT_CALLBACK_CALLER_ID", ""),
        )

    def calling_hours(self, opening: Opening | None = None) -> Opening:
        return QuietHours.parse(opening or AlwaysOpen(), self.quiet, self.tz)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
