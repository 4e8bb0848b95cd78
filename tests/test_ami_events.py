"""The AMI edge on the captured bytes: every message of the seven Asterisk 22.11 captures, split and parsed as
panoramisk does on the wire, converts to the typed event with the exact fields and units; a missing required
field raises a clear error; unknown events are ignored."""

from __future__ import annotations

from collections import Counter

import pytest
from panoramisk.message import Message

from telephony.amiconn import fields_of
from telephony.amievents import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiFieldError,
    CompleteReason,
    DeviceState,
    Hangup,
    OriginateReason,
    OriginateResponse,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueEntry,
    QueueMember,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberStatus,
    QueueParams,
    QueueStatusComplete,
    QueueSummary,
)
from telephony.amiparse import parse_event
from tests.amiserver import CAPTURES, SCENARIOS, Block, read_blocks


def fields(block: Block) -> dict[str, str | list[str]]:
    message = Message.from_line(block.data.decode("utf-8").strip())
    assert message is not None
    return fields_of(message)


def events_of(scenario: str) -> list[object]:
    out = []
    for block in read_blocks(CAPTURES / f"{scenario}.txt")[1:]:
        if block.direction == "<<<":
            event = parse_event(fields(block))
            if event is not None:
                out.append(event)
    return out


def first(scenario: str, kind: type, nth: int = 1) -> object:
    found = [e for e in events_of(scenario) if isinstance(e, kind)]
    return found[nth - 1]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_transcript_blocks_are_the_raw_stream(scenario: str) -> None:
    """The reader of the transcripts gives back exactly the captured bytes (so replays are byte for byte)."""
    blocks = read_blocks(CAPTURES / f"{scenario}.txt")
    received = b"".join(b.data for b in blocks if b.direction == "<<<")
    assert received == (CAPTURES / f"{scenario}.ami").read_bytes()


def test_every_captured_event_of_interest_converts() -> None:
    """The counts per event type match the captures' README table; nothing raises."""
    counts: Counter[str] = Counter()
    for scenario in SCENARIOS:
        counts.update(type(e).__name__ for e in events_of(scenario))
    assert counts["Hangup"] == 4 + 6 + 6 + 8 + 8 + 4 + 8
    assert counts["DialEnd"] == 2 + 4 + 5 + 6 + 4 + 2 + 2
    assert counts["QueueMemberStatus"] == 2 + 4 + 4 + 4 + 4 + 2
    assert counts["OriginateResponse"] == 13
    assert counts["QueueParams"] == 9 + 3 + 1
    assert counts["AgentCalled"] == 1 + 2 + 2 + 2 + 2 + 1
    assert counts["AgentRingNoAnswer"] == 3
    assert counts["QueueCallerAbandon"] == 3
    assert counts["QueueMember"] == 6 + 3 + 2
    assert counts["QueueEntry"] == 8 + 2
    assert counts["QueueSummary"] == 2


def test_queue_caller_join_with_the_call_uuid() -> None:
    join = first("queue-answered", QueueCallerJoin)
    assert isinstance(join, QueueCallerJoin)
    assert (join.queue, join.position, join.count) == ("attendant-billing", 1, 1)
    assert join.caller.channel == "Local/q1@direct-00000000;2"
    assert join.caller.uniqueid == "1796040783.1"
    assert join.caller.linkedid == "1796040783.0"
    assert join.caller.priority == 4  # the dialplan priority of Queue(), not the queue priority
    assert join.caller.attendant_uuid == "00000000-0000-4000-8000-000000000001"


def test_agent_events_carry_both_legs_and_their_units() -> None:
    called = first("queue-answered", AgentCalled)
    assert isinstance(called, AgentCalled)
    assert (called.interface, called.member_name) == ("Local/alice@agent-answer-2s", "Alice")
    assert called.member_channel.channel == "Local/alice@agent-answer-2s-00000001;1"
    assert called.member_channel.uniqueid == "1796040783.2"
    assert called.member_channel.attendant_uuid == "00000000-0000-4000-8000-000000000001"  # DestChanVariable

    rna = first("ring-no-answer-then-next", AgentRingNoAnswer)
    assert isinstance(rna, AgentRingNoAnswer)
    assert rna.ring_time_ms == 4000  # milliseconds: the queue's 4 s timeout
    connect = first("ring-no-answer-then-next", AgentConnect)
    assert isinstance(connect, AgentConnect)
    assert (connect.member_name, connect.hold_time_s, connect.ring_time_s) == ("Bob", 7, 2)  # seconds
    complete = first("queue-answered", AgentComplete)
    assert isinstance(complete, AgentComplete)
    assert (complete.hold_time_s, complete.talk_time_s, complete.reason) == (2, 6, CompleteReason.AGENT)


def test_abandon_and_hangup() -> None:
    abandon = first("caller-abandons", QueueCallerAbandon)
    assert isinstance(abandon, QueueCallerAbandon)
    assert (abandon.position, abandon.original_position, abandon.hold_time_s) == (1, 1, 5)
    hangups = [e for e in events_of("originate-response") if isinstance(e, Hangup)]
    assert {(h.cause, h.cause_txt) for h in hangups} >= {(16, "Normal Clearing"), (17, "User busy")}
    assert (19, "User alerting, no answer") in {(h.cause, h.cause_txt) for h in hangups}


def test_member_events_and_queue_member_name_the_member_differently() -> None:
    added = first("wrapup", QueueMemberAdded)
    assert isinstance(added, QueueMemberAdded)
    m = added.member
    assert (m.name, m.interface, m.penalty, m.wrapup_time_s, m.ring_in_use) == (
        "Alice",
        "Local/alice@agent-answer-2s",
        0,
        5,
        False,
    )
    assert m.status is DeviceState.NOT_INUSE and m.login_time == 1796040975
    after_call = [e for e in events_of("wrapup") if isinstance(e, QueueMemberStatus) and e.member.calls_taken]
    assert after_call[0].member.last_call == 1796040984
    listed = first("wrapup", QueueMember)  # QueueStatus list item: Name / Location, no Ringinuse
    assert isinstance(listed, QueueMember)
    assert (listed.member.name, listed.member.interface) == ("Alice", "Local/alice@agent-answer-2s")
    assert listed.member.in_call and listed.member.status is DeviceState.INUSE
    assert listed.member.ring_in_use is None
    paused = first("queue-status", QueueMemberPause)
    assert isinstance(paused, QueueMemberPause)
    assert (paused.member.paused, paused.member.paused_reason, paused.member.last_pause) == (
        True,
        "lunch",
        1796040829,
    )


def test_queue_status_list_items() -> None:
    params = [e for e in events_of("queue-status") if isinstance(e, QueueParams)]
    assert [p.queue for p in params[:6]] == [
        "attendant-general",
        "attendant-support",
        "attendant-orders",
        "attendant-bookings",
        "attendant-billing",
        "attendant-sales",
    ]
    late = [e for e in events_of("wrapup") if isinstance(e, QueueParams)][-1]
    assert (late.hold_time_s, late.talk_time_s, late.completed) == (4, 5, 2)  # QueueParams spells Holdtime
    assert late.service_level_perf == 100.0 and late.service_level_s == 60
    entry = first("queue-status", QueueEntry, 2)
    assert isinstance(entry, QueueEntry)
    assert (entry.position, entry.uniqueid, entry.wait_s, entry.priority) == (2, "1796040830.3", 2, 0)
    complete = first("queue-status", QueueStatusComplete)
    assert isinstance(complete, QueueStatusComplete) and complete.list_items == 10
    summary = first("queue-status", QueueSummary)
    assert isinstance(summary, QueueSummary)
    assert (summary.logged_in, summary.available, summary.callers, summary.longest_hold_time_s) == (
        2,
        0,
        2,
        2,
    )


def test_originate_response_forms() -> None:
    responses = [e for e in events_of("originate-response") if isinstance(e, OriginateResponse)]
    ok, reused, no_answer, busy, nowhere = responses
    assert ok.success and ok.reason is OriginateReason.ANSWERED
    assert ok.channel == "Local/erin@agent-answer-now-00000000;1"
    assert ok.uniqueid == "00000000-0000-4000-8000-0000000000c1"
    assert ok.variable("ATTENDANT_UUID") == "00000000-0000-4000-8000-000000000009"  # ChanVariable(<channel>)
    assert ok.action_id == "a03" and ok.application == "Wait" and ok.data == "20"
    assert not reused.success and reused.reason is OriginateReason.FAILED and reused.variables == ()
    assert reused.channel == "Local/erin@agent-answer-now"  # the dial string on failure
    assert no_answer.reason is OriginateReason.NO_ANSWER and busy.reason is OriginateReason.BUSY
    assert nowhere.uniqueid is None  # <unknown>: no ChannelId, no channel
    other_session = first("least-privilege", OriginateResponse)
    assert isinstance(other_session, OriginateResponse) and other_session.action_id == "d02"


@pytest.mark.parametrize(
    ("scenario", "event", "field"),
    [
        ("queue-answered", "QueueCallerJoin", "Uniqueid"),
        ("queue-answered", "QueueCallerJoin", "Position"),
        ("queue-answered", "AgentCalled", "DestChannel"),
        ("queue-answered", "AgentComplete", "TalkTime"),
        ("ring-no-answer-then-next", "AgentRingNoAnswer", "RingTime"),
        ("queue-answered", "QueueMemberStatus", "Status"),
        ("queue-status", "QueueMember", "Location"),
        ("queue-status", "QueueParams", "Holdtime"),
        ("queue-status", "QueueEntry", "Wait"),
        ("originate-response", "OriginateResponse", "Reason"),
    ],
)
def test_a_missing_required_field_raises_naming_it(scenario: str, event: str, field: str) -> None:
    block = next(
        b for b in read_blocks(CAPTURES / f"{scenario}.txt") if b.direction == "<<<" and b.event == event
    )
    f = fields(block)
    del f[field]
    with pytest.raises(AmiFieldError) as raised:
        parse_event(f)
    assert (raised.value.event, raised.value.field) == (event, field)
    assert "missing" in str(raised.value)


def test_bad_values_raise_and_name_the_field_not_the_value() -> None:
    block = next(b for b in read_blocks(CAPTURES / "queue-answered.txt") if b.event == "QueueMemberStatus")
    f = fields(block)
    f["Status"] = "9"
    with pytest.raises(AmiFieldError, match="Status is not a device state"):
        parse_event(f)
    f["Status"] = "+15550100001"
    with pytest.raises(AmiFieldError) as raised:
        parse_event(f)
    assert "15550100001" not in str(raised.value)
    f = fields(block)
    f["Penalty"] = ["0", "1"]
    with pytest.raises(AmiFieldError, match="Penalty is repeated"):
        parse_event(f)


def test_case_matters_and_unknown_events_are_ignored() -> None:
    block = next(b for b in read_blocks(CAPTURES / "wrapup.txt") if b.event == "QueueParams")
    f = fields(block)
    f["HoldTime"] = f.pop("Holdtime")  # QueueSummary's spelling: not QueueParams'
    with pytest.raises(AmiFieldError):
        parse_event(f)
    assert parse_event({"Event": "Newexten", "Channel": "x"}) is None
    assert parse_event({"Event": "VarSet"}) is None
    assert parse_event({"Response": "Success"}) is None
