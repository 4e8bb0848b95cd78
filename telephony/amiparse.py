"""The AMI edge: one raw manager message (``Key: Value`` fields) in, one typed event out.

The event types live in :mod:`telephony.amievents`.

Lookups are exact (case-sensitive) and follow what Asterisk 22 sends, not its XML documentation (the
differences are listed in :mod:`telephony.amievents`). A required field that is missing, repeated or not a
number raises :class:`~telephony.amievents.AmiFieldError` naming the event and the field, never the value
(values can be caller numbers); optional fields default to empty. An event not read here costs one dictionary
lookup and returns ``None``.
"""

from __future__ import annotations

from collections.abc import Callable

from telephony.amievents import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    AmiFieldError,
    ChannelSnapshot,
    CompleteReason,
    DeviceState,
    DialEnd,
    Fields,
    Hangup,
    MemberState,
    OriginateReason,
    OriginateResponse,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueEntry,
    QueueMember,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberPenalty,
    QueueMemberRemoved,
    QueueMemberStatus,
    QueueParams,
    QueueStatusComplete,
    QueueSummary,
    QueueSummaryComplete,
)


class _Reader:
    """Typed access to one message's fields, raising :class:`AmiFieldError` with the event's name."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Fields) -> None:
        self.event = event
        self.fields = fields

    def text(self, name: str) -> str:
        """A required field (an empty value is a value)."""
        value = self.fields.get(name)
        if value is None:
            raise AmiFieldError(self.event, name, "is missing")
        if isinstance(value, list):
            raise AmiFieldError(self.event, name, "is repeated")
        return value

    def opt(self, name: str, default: str = "") -> str:
        value = self.fields.get(name)
        if value is None:
            return default
        if isinstance(value, list):
            raise AmiFieldError(self.event, name, "is repeated")
        return value

    def integer(self, name: str) -> int:
        raw = self.text(name).strip()
        try:
            return int(raw)
        except ValueError:
            raise AmiFieldError(self.event, name, "is not an integer") from None

    def opt_integer(self, name: str) -> int | None:
        if name not in self.fields:
            return None
        return self.integer(name)

    def number(self, name: str) -> float:
        raw = self.text(name).strip()
        try:
            return float(raw)
        except ValueError:
            raise AmiFieldError(self.event, name, "is not a number") from None

    def flag(self, name: str) -> bool:
        value = self.integer(name)
        if value not in (0, 1):
            raise AmiFieldError(self.event, name, "is not 0 or 1")
        return value == 1

    def device_state(self, name: str) -> DeviceState:
        value = self.integer(name)
        try:
            return DeviceState(value)
        except ValueError:
            raise AmiFieldError(self.event, name, "is not a device state 0-8") from None

    def originate_reason(self, name: str) -> OriginateReason:
        value = self.integer(name)
        try:
            return OriginateReason(value)
        except ValueError:
            raise AmiFieldError(self.event, name, "is not a known reason 0-8") from None

    def variables(self, name: str) -> tuple[tuple[str, str], ...]:
        """``NAME=value`` lines of a (possibly repeated) field; absent -> no variables."""
        value = self.fields.get(name)
        if value is None:
            return ()
        return _pairs(self.event, name, [value] if isinstance(value, str) else value)


def _pairs(event: str, field: str, values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in values:
        var, sep, val = item.partition("=")
        if not sep or not var:
            raise AmiFieldError(event, field, "is not NAME=value")
        pairs.append((var, val))
    return tuple(pairs)


def _snapshot(r: _Reader, prefix: str = "") -> ChannelSnapshot:
    p = prefix
    return ChannelSnapshot(
        channel=r.text(p + "Channel"),
        uniqueid=r.text(p + "Uniqueid"),
        linkedid=r.opt(p + "Linkedid"),
        caller_id_num=r.opt(p + "CallerIDNum"),
        caller_id_name=r.opt(p + "CallerIDName"),
        context=r.opt(p + "Context"),
        exten=r.opt(p + "Exten"),
        priority=r.opt_integer(p + "Priority"),
        variables=r.variables(p + "ChanVariable"),
    )


def _agent_fields(r: _Reader) -> tuple[ChannelSnapshot, ChannelSnapshot, str, str, str]:
    return _snapshot(r), _snapshot(r, "Dest"), r.text("Queue"), r.text("Interface"), r.text("MemberName")


def _member(r: _Reader, name_field: str, interface_field: str, ring_in_use: bool) -> MemberState:
    return MemberState(
        queue=r.text("Queue"),
        name=r.text(name_field),
        interface=r.text(interface_field),
        state_interface=r.opt("StateInterface"),
        membership=r.opt("Membership"),
        penalty=r.integer("Penalty"),
        calls_taken=r.integer("CallsTaken"),
        last_call=r.integer("LastCall"),
        last_pause=r.opt_integer("LastPause") or 0,
        login_time=r.opt_integer("LoginTime") or 0,
        in_call=r.flag("InCall"),
        status=r.device_state("Status"),
        paused=r.flag("Paused"),
        paused_reason=r.opt("PausedReason"),
        wrapup_time_s=r.opt_integer("Wrapuptime") or 0,
        ring_in_use=r.flag("Ringinuse") if ring_in_use and "Ringinuse" in r.fields else None,
    )


def _caller_join(r: _Reader) -> AmiEvent:
    return QueueCallerJoin(_snapshot(r), r.text("Queue"), r.integer("Position"), r.integer("Count"))


def _caller_leave(r: _Reader) -> AmiEvent:
    return QueueCallerLeave(_snapshot(r), r.text("Queue"), r.integer("Position"), r.integer("Count"))


def _caller_abandon(r: _Reader) -> AmiEvent:
    return QueueCallerAbandon(
        _snapshot(r),
        r.text("Queue"),
        r.integer("Position"),
        r.integer("OriginalPosition"),
        r.integer("HoldTime"),
    )


def _agent_called(r: _Reader) -> AmiEvent:
    return AgentCalled(*_agent_fields(r))


def _agent_ring_no_answer(r: _Reader) -> AmiEvent:
    return AgentRingNoAnswer(*_agent_fields(r), ring_time_ms=r.integer("RingTime"))


def _agent_connect(r: _Reader) -> AmiEvent:
    return AgentConnect(
        *_agent_fields(r), hold_time_s=r.integer("HoldTime"), ring_time_s=r.integer("RingTime")
    )


def _agent_complete(r: _Reader) -> AmiEvent:
    raw = r.text("Reason")
    try:
        reason = CompleteReason(raw)
    except ValueError:
        raise AmiFieldError(r.event, "Reason", "is not caller, agent or transfer") from None
    return AgentComplete(
        *_agent_fields(r), hold_time_s=r.integer("HoldTime"), talk_time_s=r.integer("TalkTime"), reason=reason
    )


def _member_event(kind: Callable[[MemberState], AmiEvent]) -> Callable[[_Reader], AmiEvent]:
    def convert(r: _Reader) -> AmiEvent:
        return kind(_member(r, "MemberName", "Interface", ring_in_use=True))

    return convert


def _queue_member(r: _Reader) -> AmiEvent:
    return QueueMember(_member(r, "Name", "Location", ring_in_use=False))


def _queue_params(r: _Reader) -> AmiEvent:
    return QueueParams(
        queue=r.text("Queue"),
        max_callers=r.integer("Max"),
        strategy=r.text("Strategy"),
        calls=r.integer("Calls"),
        hold_time_s=r.integer("Holdtime"),
        talk_time_s=r.integer("TalkTime"),
        completed=r.integer("Completed"),
        abandoned=r.integer("Abandoned"),
        service_level_s=r.integer("ServiceLevel"),
        service_level_perf=r.number("ServicelevelPerf"),
        service_level_perf2=r.number("ServicelevelPerf2") if "ServicelevelPerf2" in r.fields else 0.0,
        weight=r.opt_integer("Weight") or 0,
    )


def _queue_entry(r: _Reader) -> AmiEvent:
    return QueueEntry(
        queue=r.text("Queue"),
        position=r.integer("Position"),
        channel=r.text("Channel"),
        uniqueid=r.text("Uniqueid"),
        caller_id_num=r.opt("CallerIDNum"),
        caller_id_name=r.opt("CallerIDName"),
        wait_s=r.integer("Wait"),
        priority=r.integer("Priority"),
    )


def _queue_summary(r: _Reader) -> AmiEvent:
    return QueueSummary(
        queue=r.text("Queue"),
        logged_in=r.integer("LoggedIn"),
        available=r.integer("Available"),
        callers=r.integer("Callers"),
        hold_time_s=r.integer("HoldTime"),
        talk_time_s=r.integer("TalkTime"),
        longest_hold_time_s=r.integer("LongestHoldTime"),
    )


def _originate_response(r: _Reader) -> AmiEvent:
    response = r.text("Response")
    if response not in ("Success", "Failure"):
        raise AmiFieldError(r.event, "Response", "is not Success or Failure")
    uniqueid = r.text("Uniqueid")
    variables: list[str] = []
    for key, value in r.fields.items():
        if key.startswith("ChanVariable(") and key.endswith(")"):
            variables.extend([value] if isinstance(value, str) else value)
    return OriginateResponse(
        action_id=r.opt("ActionID") or None,
        success=response == "Success",
        channel=r.text("Channel"),
        reason=r.originate_reason("Reason"),
        uniqueid=None if uniqueid == "<unknown>" else uniqueid,
        application=r.opt("Application"),
        data=r.opt("Data"),
        context=r.opt("Context"),
        exten=r.opt("Exten"),
        caller_id_num=r.opt("CallerIDNum"),
        caller_id_name=r.opt("CallerIDName"),
        variables=_pairs(r.event, "ChanVariable(<channel>)", variables),
    )


def _dial_end(r: _Reader) -> AmiEvent:
    caller = _snapshot(r) if "Channel" in r.fields else None
    return DialEnd(caller, _snapshot(r, "Dest"), r.text("DialStatus"))


def _hangup(r: _Reader) -> AmiEvent:
    return Hangup(_snapshot(r), r.integer("Cause"), r.opt("Cause-txt"))


_CONVERTERS: dict[str, Callable[[_Reader], AmiEvent]] = {
    "QueueCallerJoin": _caller_join,
    "QueueCallerLeave": _caller_leave,
    "QueueCallerAbandon": _caller_abandon,
    "AgentCalled": _agent_called,
    "AgentRingNoAnswer": _agent_ring_no_answer,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "QueueMemberStatus": _member_event(QueueMemberStatus),
    "QueueMemberAdded": _member_event(QueueMemberAdded),
    "QueueMemberRemoved": _member_event(QueueMemberRemoved),
    "QueueMemberPause": _member_event(QueueMemberPause),
    "QueueMemberPenalty": _member_event(QueueMemberPenalty),
    "QueueParams": _queue_params,
    "QueueMember": _queue_member,
    "QueueEntry": _queue_entry,
    "QueueStatusComplete": lambda r: QueueStatusComplete(r.integer("ListItems")),
    "QueueSummary": _queue_summary,
    "QueueSummaryComplete": lambda r: QueueSummaryComplete(r.integer("ListItems")),
    "OriginateResponse": _originate_response,
    "Hangup": _hangup,
    "DialEnd": _dial_end,
}

EVENT_NAMES = frozenset(_CONVERTERS)
"""The ``Event`` names :func:`parse_event` converts; every other event is ignored."""


def parse_event(fields: Fields) -> AmiEvent | None:
    """The typed event for one AMI message, ``None`` for an event this module does not read.

    Raises :class:`AmiFieldError` when a required field is missing, repeated or malformed.
    """
    name = fields.get("Event")
    if not isinstance(name, str):
        return None
    convert = _CONVERTERS.get(name)
    if convert is None:
        return None
    return convert(_Reader(name, fields))
