"""The call-state vocabulary every process shares: how a call ended, why, which skill, and where in Redis.

The gateway writes it, the FastAGI ``outcome`` route reads it for the dialplan, the actions name reasons and
skills in handoff payloads, and call control (queues, agents) builds on it. One definition here; nothing
else spells these strings.

Redis keys::

    attendant:calls:active                sorted set: call UUID -> when a gateway last vouched for it (unix s)
    attendant:call:<uuid>                 hash: outcome, reason, skill, started_at, ended_at, turns,
                                          context (JSON); and, from FastAGI ``register``: caller_number,
                                          channel, language, rate
    attendant:call:<uuid>:transcript      stream: who (caller|bot|system), text, t (unix seconds) and, on the
                                          gateway's own phrases, prompt (its name in prompts.yml)
    attendant:call:<uuid>:disposition     hash: agent id -> JSON {code, label, note, queue, uniqueid, member,
                                          at}, written once per agent at wrap-up (the agent console)
    attendant:agent:<id>:offers           sorted set: call UUID -> when it was offered to the agent (unix s);
                                          the console shows an agent a call's context only if it is here
    attendant:console:session:<sha256>    string: agent id of a console login (key: sha256 of the cookie)
    attendant:callbacks                   stream: callback requests (``bot/offers.py`` writes them: request,
                                          call, number, skill, queue, priority, entered, not_before,
                                          window_end, language); the dispatcher dials them
    attendant:voicemails                  stream: voicemails recorded by the dialplan (FastAGI ``voicemail``:
                                          call, file, status, caller_number, line, skill, reason,
                                          context JSON, at); the agent console lists them
    attendant:voicemail:<entry id>        hash: heard_by, heard_at, handled_by, handled_at (the console; the
                                          first agent to hear / handle a voicemail wins the field)

Every value that reaches the dialplan matches :data:`SAFE_VALUE`; the enum values below all do.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import Enum

RETENTION_S = 86400
"""How long a call's hash and transcript live after their last write, seconds."""
TRANSCRIPT_MAXLEN = 1000
"""Entries kept in a call's transcript stream."""
ACTIVE_KEY = "attendant:calls:active"
CALLBACKS_KEY = "attendant:callbacks"
VOICEMAILS_KEY = "attendant:voicemails"
SAFE_VALUE = re.compile(r"[a-z0-9_-]{1,32}")
"""The only values that reach a channel variable."""


def call_key(call_id: object) -> str:
    """The call's hash (``call_id`` a UUID or its text)."""
    return f"attendant:call:{call_id}"


def transcript_key(call_id: object) -> str:
    """The call's transcript stream."""
    return f"attendant:call:{call_id}:transcript"


def disposition_key(call_id: object) -> str:
    """The call's wrap-up dispositions, one field per agent."""
    return f"attendant:call:{call_id}:disposition"


def agent_offers_key(agent_id: str) -> str:
    """The calls offered to an agent (what the agent may read)."""
    return f"attendant:agent:{agent_id}:offers"


def voicemail_key(entry_id: str) -> str:
    """What agents did with a voicemail (``entry_id``: its id in :data:`VOICEMAILS_KEY`)."""
    return f"attendant:voicemail:{entry_id}"


def console_session_key(digest: str) -> str:
    """A console login session, by the sha256 (hex) of its cookie value."""
    return f"attendant:console:session:{digest}"


class Outcome(str, Enum):
    """How a call ended, as the dialplan's ``ATTENDANT_RESULT`` sees it."""

    COMPLETED = "completed"
    """The bot finished the caller's business and said goodbye: hang up."""
    HANDOFF = "handoff"
    """A person takes over: queue by skill."""
    ABANDONED = "abandoned"
    """The caller hung up (if still there after all, a person takes over)."""
    FAILED = "failed"
    """The gateway broke: the dialplan queues the caller."""
    NONE = "none"
    """No usable outcome (no record, Redis down): the dialplan queues the caller."""
    CALLBACK = "callback"
    """The caller accepted a callback (request submitted): the dialplan hangs up; nobody is queued."""
    VOICEMAIL = "voicemail"
    """After hours, the caller leaves a message: the dialplan records it (``Record()``)."""
    ONCALL = "oncall"
    """After hours, an urgent (priority-1) problem: the dialplan dials the on-call number."""

    def __str__(self) -> str:
        return self.value


class Reason(str, Enum):
    """Why a call ended the way it did (``ATTENDANT_REASON``, reports, the agent's screen)."""

    # the caller or the dialogue asked for a person
    REQUESTED = "requested"
    NO_MATCH = "no-match"
    VERIFICATION_FAILED = "verification-failed"
    VERIFICATION_LOCKED = "verification-locked"
    """Too many failed checks across calls: the customer is locked out of self-service verification."""
    NOT_FOUND = "not-found"
    TECHNICAL = "technical"
    # the gateway ended the call
    GOODBYE = "goodbye"
    NO_INPUT = "no-input"
    TOO_LONG = "too-long"
    CALLER_HANGUP = "caller-hangup"
    PEER_ERROR = "peer-error"
    INTERNAL = "internal"
    # the caller chose not to wait, or called outside opening hours
    LONG_WAIT = "long-wait"
    AFTER_HOURS = "after-hours"
    URGENT = "urgent"
    # FastAGI found nothing usable
    NONE = "none"
    NO_RESULT = "no-result"
    NO_CALL_ID = "no-call-id"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, raw: object, default: Reason) -> Reason:
        """``raw`` as a reason, else ``default``."""
        try:
            return cls(str(raw))
        except ValueError:
            return default


class Skill(str, Enum):
    """The agent skill a handoff needs; queue ``attendant-<skill>`` in the sample ``queues.conf``."""

    GENERAL = "general"
    BILLING = "billing"
    ORDERS = "orders"
    SALES = "sales"
    BOOKINGS = "bookings"
    SUPPORT = "support"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, raw: object, default: Skill | None = None) -> Skill:
        """``raw`` as a skill, else ``default`` (:attr:`GENERAL` unless given)."""
        try:
            return cls(str(raw))
        except ValueError:
            return default or cls.GENERAL


QUEUE_PREFIX = "attendant-"
"""Queue ``attendant-<skill>`` (``queues.conf``); ``attendant-<skill>-<language>`` where one is configured."""
QUEUE_NAME = re.compile(r"attendant-[a-z0-9_-]{1,40}")
PRIORITY_MAX = 10
"""``QUEUE_PRIO`` range 0..10: higher enters the queue ahead."""
PENALTY_MAX = 4
"""Member penalties 0 (proficiency 5, best) .. 4 (proficiency 1)."""
WIDEN_RULE = "attendant-widen"
"""The ``queuerules.conf`` rule that lets more agents take a waiting caller as time goes by."""
RULES = frozenset({WIDEN_RULE})


def queue_name(skill: Skill, language: str | None = None) -> str:
    """The skill's queue, per language where not English (the dialplan falls back when it does not exist)."""
    base = f"{QUEUE_PREFIX}{skill.value}"
    if language and language != "en" and re.fullmatch(r"[a-z]{2}", language):
        return f"{base}-{language}"
    return base


@dataclass(frozen=True, slots=True)
class Route:
    """Where a handed-off caller waits and how: what the FastAGI ``outcome`` route tells ``Queue()``."""

    queue: str
    """``attendant-<skill>[-<language>]``."""
    priority: int = 0
    """``QUEUE_PRIO``, 0..10; higher enters ahead (priority-1 incidents, verified high-value customers)."""
    max_penalty: int = 1
    """``QUEUE_MAX_PENALTY`` at entry: the best agents first; the rule widens it over time."""
    rule: str = WIDEN_RULE
    """The ``queuerules.conf`` rule."""

    def __post_init__(self) -> None:
        if not QUEUE_NAME.fullmatch(self.queue):
            raise ValueError(f"not an Attendant queue name: {self.queue!r}")
        if not 0 <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"priority {self.priority} outside 0..{PRIORITY_MAX}")
        if not 0 <= self.max_penalty <= PENALTY_MAX:
            raise ValueError(f"max penalty {self.max_penalty} outside 0..{PENALTY_MAX}")
        if self.rule not in RULES:
            raise ValueError(f"unknown queue rule {self.rule!r}")

    def fields(self) -> dict[str, str]:
        """As stored in the call's hash."""
        return {
            "queue": self.queue,
            "priority": str(self.priority),
            "max_penalty": str(self.max_penalty),
            "rule": self.rule,
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str], fallback: Skill = Skill.GENERAL) -> Route:
        """From the call's hash; anything missing or malformed gives the fallback skill's default route."""
        try:
            return cls(
                queue=fields["queue"],
                priority=int(fields.get("priority", "0")),
                max_penalty=int(fields.get("max_penalty", "1")),
                rule=fields.get("rule", WIDEN_RULE),
            )
        except (KeyError, ValueError):
            return cls(queue_name(fallback))


WHISPER_VERSION = 8
"""A whisper leg's AudioSocket UUID is the call's UUID with its version nibble set to 8 (RFC 9562's
vendor-specific UUIDs): the gateway tells a whisper leg from a call at the first frame, with no lookup."""


def whisper_uuid(call: uuid.UUID) -> uuid.UUID:
    """The UUID the agent's whisper leg connects with, for ``call``."""
    return uuid.UUID(int=(call.int & ~(0xF << 76)) | (WHISPER_VERSION << 76))


def whispered_call(leg: uuid.UUID) -> uuid.UUID | None:
    """The call a whisper leg belongs to (call UUIDs are version 4, from ``UUID()``), else ``None``."""
    if leg.version != WHISPER_VERSION:
        return None
    return uuid.UUID(int=(leg.int & ~(0xF << 76)) | (4 << 76))
