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

Every value that reaches the dialplan matches :data:`SAFE_VALUE`; the enum values below all do.
"""

from __future__ import annotations

import re
from enum import Enum

RETENTION_S = 86400
"""How long a call's hash and transcript live after their last write, seconds."""
TRANSCRIPT_MAXLEN = 1000
"""Entries kept in a call's transcript stream."""
ACTIVE_KEY = "attendant:calls:active"
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

    def __str__(self) -> str:
        return self.value


class Reason(str, Enum):
    """Why a call ended the way it did (``ATTENDANT_REASON``, reports, the agent's screen)."""

    # the caller or the dialogue asked for a person
    REQUESTED = "requested"
    NO_MATCH = "no-match"
    VERIFICATION_FAILED = "verification-failed"
    NOT_FOUND = "not-found"
    TECHNICAL = "technical"
    # the gateway ended the call
    GOODBYE = "goodbye"
    NO_INPUT = "no-input"
    TOO_LONG = "too-long"
    CALLER_HANGUP = "caller-hangup"
    PEER_ERROR = "peer-error"
    INTERNAL = "internal"
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
