"""Typed AMI events: the messages of Asterisk's manager interface that Attendant reads, as frozen dataclasses.

:mod:`telephony.amiparse` converts each message at the edge, once, with the field names Asterisk 22 really
sends (checked against the captures in ``tests/data/asterisk-captures/`` and ``apps/app_queue.c``); nothing
past it reads a raw ``Key: Value`` header. A required field that is missing, repeated or not a number raises
:class:`AmiFieldError` naming the event and the field (never its value: values can be caller numbers); the AMI
client logs it and skips that one message, and the connection stays up. An event not read here is ignored
after one dictionary lookup. Attribute names carry their units (``_s`` seconds, ``_ms`` milliseconds).

What Asterisk 22 sends, where it differs from its own documentation:

- Units. ``HoldTime``/``TalkTime`` of ``Agent*`` and ``QueueCallerAbandon`` are durations in seconds (the XML
  docs say "seconds since 1970"). ``RingTime`` is **milliseconds** in ``AgentRingNoAnswer`` (4000 = a 4 s
  ring) but **seconds** in ``AgentConnect``. ``LastCall``/``LastPause``/``LoginTime`` are Unix seconds, 0 =
  never. ``Wrapuptime`` of a member is seconds, 0 = the queue's own ``wrapuptime`` applies.
- Names. ``QueueParams`` spells ``Holdtime`` and ``ServicelevelPerf``/``ServicelevelPerf2``; ``QueueSummary``
  spells ``HoldTime``. ``QueueMember`` (a ``QueueStatus`` list item) names the member ``Name``/``Location``
  where the member events say ``MemberName``/``Interface``, and has no ``Ringinuse``. Lookups here are exact
  (case-sensitive): a field spelled otherwise counts as missing.
- Channel variables. Events carry ``ChanVariable: NAME=value`` (and ``DestChanVariable`` for the agent's leg)
  for the names in ``manager.conf`` ``channelvars`` only, with an empty value when the channel lacks it.
  ``OriginateResponse`` instead writes ``ChanVariable(<channel name>): NAME=value``, and only on success.
- ``OriginateResponse``: ``Uniqueid`` is ``<unknown>`` when Originate had no ``ChannelId`` and no channel was
  made (read as ``None`` here); on failure ``Channel`` is the dial string. ``Reason`` is the last control
  frame (:class:`OriginateReason`): 4 answered, 3 rang out, 5 busy, 0 anything else (a reused ``ChannelId``,
  no such extension).
- Member ``Status`` is the device state 0-8 (:class:`DeviceState`). Local-channel members go 1 -> 2 while rung
  (never 6). ``InCall`` is 1 only while a queue call is up, which in practice only ``QueueStatus`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TypeAlias

Fields: TypeAlias = Mapping[str, str | list[str]]
"""One AMI message: header name (as sent) -> value, or the list of values of a repeated header."""


class AmiFieldError(ValueError):
    """An AMI message lacks a required field, repeats it, or carries a value of the wrong kind."""

    def __init__(self, event: str, field: str, problem: str) -> None:
        super().__init__(f"AMI {event or 'message'}: field {field} {problem}")
        self.event = event
        """The ``Event`` name of the message."""
        self.field = field
        """The offending field, exactly as Asterisk spells it."""
        self.problem = problem


class DeviceState(IntEnum):
    """A queue member's device state (``Status``), Asterisk's ``enum ast_device_state``."""

    UNKNOWN = 0
    NOT_INUSE = 1
    INUSE = 2
    BUSY = 3
    INVALID = 4
    UNAVAILABLE = 5
    RINGING = 6
    RINGINUSE = 7
    ONHOLD = 8


class CompleteReason(str, Enum):
    """Who ended a queue call (``AgentComplete`` ``Reason``)."""

    CALLER = "caller"
    AGENT = "agent"
    TRANSFER = "transfer"


class OriginateReason(IntEnum):
    """``OriginateResponse`` ``Reason``: the last control frame seen on the outgoing channel."""

    FAILED = 0
    """No control frame: the channel could not be made (reused ``ChannelId``, no such extension, ...)."""
    HANGUP = 1
    RING = 2
    NO_ANSWER = 3
    """It rang (``AST_CONTROL_RINGING``) until the Originate ``Timeout``."""
    ANSWERED = 4
    BUSY = 5
    TAKEOFFHOOK = 6
    OFFHOOK = 7
    CONGESTION = 8


ATTENDANT_UUID = "ATTENDANT_UUID"
"""The channel variable that names a call's context (``manager.conf`` ``channelvars = ATTENDANT_UUID``)."""


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """A channel as an event describes it (the caller's is unprefixed, the agent's leg ``Dest…``)."""

    channel: str
    """Channel name, e.g. ``PJSIP/1001-0000002a`` or ``Local/q1@direct-00000000;2``."""
    uniqueid: str
    """Asterisk's unique id (``<unix time>.<n>``, or the ``ChannelId`` given to Originate)."""
    linkedid: str = ""
    """The unique id of the oldest channel of the call."""
    caller_id_num: str = ""
    """``CallerIDNum`` as sent (``<unknown>`` when none). Personal data: never log it."""
    caller_id_name: str = ""
    """``CallerIDName`` as sent (``<unknown>`` when none). Personal data: never log it."""
    context: str = ""
    exten: str = ""
    priority: int | None = None
    """Dialplan priority (not the queue priority)."""
    variables: tuple[tuple[str, str], ...] = ()
    """``ChanVariable`` pairs (only names listed in ``manager.conf`` ``channelvars``)."""

    def variable(self, name: str) -> str | None:
        """The channel variable's value; ``None`` when not reported or empty."""
        for var, value in self.variables:
            if var == name:
                return value or None
        return None

    @property
    def attendant_uuid(self) -> str | None:
        """The call's ``ATTENDANT_UUID`` (``None``: not set on this channel, or not in ``channelvars``)."""
        return self.variable(ATTENDANT_UUID)


# --- queue callers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueCallerJoin:
    """A caller entered a queue."""

    caller: ChannelSnapshot
    queue: str
    position: int
    """1-based place in the queue; callers at or behind it moved back one."""
    count: int
    """Callers waiting in the queue, this one included."""


@dataclass(frozen=True, slots=True)
class QueueCallerLeave:
    """A caller left a queue: answered, abandoned (after ``QueueCallerAbandon``), timed out or moved."""

    caller: ChannelSnapshot
    queue: str
    position: int
    """The place it left from; callers behind it moved up one."""
    count: int
    """Callers still waiting."""


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon:
    """A waiting caller hung up (followed by ``QueueCallerLeave``)."""

    caller: ChannelSnapshot
    queue: str
    position: int
    original_position: int
    hold_time_s: int
    """Seconds waited."""


# --- agents offered a call ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentCalled:
    """The queue rings a member for a caller."""

    caller: ChannelSnapshot
    member_channel: ChannelSnapshot
    """The member's leg (``Dest…`` fields); ``ATTENDANT_UUID`` is inherited when set with ``__``."""
    queue: str
    interface: str
    member_name: str


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer:
    """The member did not answer within the queue's ``timeout``."""

    caller: ChannelSnapshot
    member_channel: ChannelSnapshot
    queue: str
    interface: str
    member_name: str
    ring_time_ms: int
    """How long it rang, **milliseconds**."""


@dataclass(frozen=True, slots=True)
class AgentConnect:
    """The member answered: caller and member are bridged (after ``QueueCallerLeave``)."""

    caller: ChannelSnapshot
    member_channel: ChannelSnapshot
    queue: str
    interface: str
    member_name: str
    hold_time_s: int
    """Seconds the caller waited."""
    ring_time_s: int
    """Seconds this member rang, **seconds** (unlike ``AgentRingNoAnswer``)."""


@dataclass(frozen=True, slots=True)
class AgentComplete:
    """A queue call ended; the member's wrap-up starts now."""

    caller: ChannelSnapshot
    member_channel: ChannelSnapshot
    queue: str
    interface: str
    member_name: str
    hold_time_s: int
    """Seconds the caller waited."""
    talk_time_s: int
    """Seconds of conversation."""
    reason: CompleteReason


# --- members --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberState:
    """A queue member (an agent logged in to one queue), as Asterisk reports it."""

    queue: str
    name: str
    """``MemberName`` (``Name`` in ``QueueMember``)."""
    interface: str
    """The interface the queue rings (``Interface``; ``Location`` in ``QueueMember``)."""
    state_interface: str
    """Where the device state comes from (often the same as ``interface``)."""
    membership: str
    """``dynamic``, ``static`` or ``realtime``."""
    penalty: int
    """Lower is rung first; 0 = best skill."""
    calls_taken: int
    last_call: int
    """When the member's last queue call ended, Unix seconds; 0 = never."""
    last_pause: int
    """When the member was last paused, Unix seconds (kept after unpausing); 0 = never."""
    login_time: int
    """When the member was added, Unix seconds."""
    in_call: bool
    status: DeviceState
    paused: bool
    paused_reason: str
    wrapup_time_s: int
    """The member's own wrap-up, seconds; 0 = the queue's ``wrapuptime`` applies."""
    ring_in_use: bool | None = None
    """``Ringinuse`` (member events only; ``None`` from ``QueueMember``)."""


@dataclass(frozen=True, slots=True)
class QueueMemberStatus:
    """A member's state changed (device state, call taken, ...): the whole member is sent."""

    member: MemberState


@dataclass(frozen=True, slots=True)
class QueueMemberAdded:
    """A member was added (``QueueAdd``, ``AddQueueMember()``, reload)."""

    member: MemberState


@dataclass(frozen=True, slots=True)
class QueueMemberRemoved:
    """A member was removed."""

    member: MemberState


@dataclass(frozen=True, slots=True)
class QueueMemberPause:
    """A member was paused or unpaused (``member.paused``, ``member.paused_reason``)."""

    member: MemberState


@dataclass(frozen=True, slots=True)
class QueueMemberPenalty:
    """A member's penalty changed (``QueuePenalty``); same fields as the other member events
    (``queue_member_blob_create`` in app_queue.c; not in the captures)."""

    member: MemberState


# --- QueueStatus / QueueSummary list items --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueParams:
    """A queue's settings and statistics (``QueueStatus`` list item)."""

    queue: str
    max_callers: int
    """``Max``: 0 = no limit."""
    strategy: str
    calls: int
    """Callers waiting now."""
    hold_time_s: int
    """``Holdtime``: app_queue's running average of answered callers' waits, seconds (1/4 weight per call)."""
    talk_time_s: int
    """``TalkTime``: running average of talk time, seconds (1/4 weight per call)."""
    completed: int
    abandoned: int
    service_level_s: int
    """``ServiceLevel``: the threshold, seconds."""
    service_level_perf: float
    """``ServicelevelPerf``: percent of completed calls answered within the threshold."""
    service_level_perf2: float
    """``ServicelevelPerf2``: the same, counting abandoned calls too."""
    weight: int


@dataclass(frozen=True, slots=True)
class QueueMember:
    """A member (``QueueStatus`` list item; ``Name``/``Location`` fields)."""

    member: MemberState


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A waiting caller (``QueueStatus`` list item; no ``Linkedid``, no channel variables)."""

    queue: str
    position: int
    channel: str
    uniqueid: str
    caller_id_num: str
    """Personal data: never log it."""
    caller_id_name: str
    wait_s: int
    """Seconds waited so far."""
    priority: int
    """The caller's queue priority (``QUEUE_PRIO``; higher waits ahead)."""


@dataclass(frozen=True, slots=True)
class QueueStatusComplete:
    """The end of a ``QueueStatus`` list."""

    list_items: int


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """One queue's summary (``QueueSummary`` list item). ``available`` ignores wrap-up and penalties."""

    queue: str
    logged_in: int
    available: int
    callers: int
    hold_time_s: int
    talk_time_s: int
    longest_hold_time_s: int


@dataclass(frozen=True, slots=True)
class QueueSummaryComplete:
    """The end of a ``QueueSummary`` list."""

    list_items: int


# --- calls ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginateResponse:
    """The outcome of an asynchronous ``Originate`` (sent to every session reading class ``call``)."""

    action_id: str | None
    """The ``ActionID`` of the Originate, from whichever session sent it."""
    success: bool
    channel: str
    """The channel name on success; the dial string (``Local/dave@agent-never``) on failure."""
    reason: OriginateReason
    uniqueid: str | None
    """The channel's unique id (the ``ChannelId`` given), ``None`` for ``<unknown>``."""
    application: str = ""
    data: str = ""
    context: str = ""
    exten: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    variables: tuple[tuple[str, str], ...] = ()
    """From ``ChanVariable(<channel>): NAME=value`` (success only)."""

    def variable(self, name: str) -> str | None:
        for var, value in self.variables:
            if var == name:
                return value or None
        return None


@dataclass(frozen=True, slots=True)
class Hangup:
    """A channel hung up."""

    channel: ChannelSnapshot
    cause: int
    """Q.850 cause (16 normal clearing, 17 busy, 19 no answer, 0 unknown)."""
    cause_txt: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    """A dial attempt ended (``Dial()``, a queue ringing a member, or Originate's own dial)."""

    caller: ChannelSnapshot | None
    """The dialling channel; ``None`` when the dial has no calling channel (Originate's outgoing leg)."""
    dest: ChannelSnapshot
    """The dialled channel (``Dest…``)."""
    dial_status: str
    """``ANSWER``, ``NOANSWER``, ``BUSY``, ``CONGESTION``, ``CHANUNAVAIL``, ``CANCEL``... (``DIALSTATUS``)."""


AmiEvent: TypeAlias = (
    QueueCallerJoin
    | QueueCallerLeave
    | QueueCallerAbandon
    | AgentCalled
    | AgentRingNoAnswer
    | AgentConnect
    | AgentComplete
    | QueueMemberStatus
    | QueueMemberAdded
    | QueueMemberRemoved
    | QueueMemberPause
    | QueueMemberPenalty
    | QueueParams
    | QueueMember
    | QueueEntry
    | QueueStatusComplete
    | QueueSummary
    | QueueSummaryComplete
    | OriginateResponse
    | Hangup
    | DialEnd
)
"""Every event the edge delivers."""
