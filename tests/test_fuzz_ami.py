"""Fuzzing the AMI edge: whatever bytes an AMI peer sends, in whatever TCP cuts, the chain that turns them
into typed events — panoramisk's protocol (as :mod:`telephony.amiconn` subclasses it: UTF-8 across reads,
a size cap), the manager's dispatch, :meth:`AmiConnection._dispatch` and :func:`amiparse.parse_event`
— gives typed events, or skips the message with the module's own :class:`AmiFieldError` (counted in
``malformed``), and never raises anything else.

Three kinds of input: arbitrary bytes in arbitrary splits; messages built from the real event and field
names with values missing, repeated, empty or of the wrong kind; and a seeded mutation of the real Asterisk
22.11 captures (``tests/data/asterisk-captures/*.ami``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.amiconn import AmiConfig, AmiConnection, _Manager, _Protocol, _QuietLog
from telephony.amievents import AmiEvent, AmiFieldError
from telephony.amiparse import EVENT_NAMES, parse_event
from tests.amiserver import CAPTURES, SCENARIOS

CAPTURED = [(CAPTURES / f"{s}.ami").read_bytes() for s in SCENARIOS]
MUTATED_STREAMS = 1000


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _feed(chunks: list[bytes]) -> tuple[list[AmiEvent], int, bool]:
    """Feed ``chunks`` through the real chain; the typed events delivered, the malformed count, and whether
    the connection was closed (size cap or a ``Shutdown`` event). Raises whatever the chain raises."""

    async def run() -> tuple[list[AmiEvent], int, bool]:
        loop = asyncio.get_running_loop()
        conn = AmiConnection(AmiConfig(secret="fuzz"))
        events: list[AmiEvent] = []
        conn.subscribe(events.append)
        manager = _Manager(lambda exc: None, loop=loop, log=_QuietLog())
        manager.register_event("*", conn._dispatch)
        protocol = _Protocol()
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.factory = manager
        manager.protocol = protocol
        for chunk in chunks:
            if transport.closed:
                break
            protocol.data_received(chunk)
        await asyncio.sleep(0)  # let anything the dispatch scheduled run (and fail) here
        return events, conn.malformed, transport.closed

    quiet = logging.getLogger("telephony.amiconn")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # thousands of "message skipped" lines would only slow the run
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()
        quiet.setLevel(level)


def _check(events: list[AmiEvent]) -> None:
    assert all(isinstance(e, AmiEvent) for e in events)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=1, max_value=64), max_size=40))
def test_any_bytes_in_any_split_give_typed_events_or_nothing(data: bytes, cuts: list[int]) -> None:
    whole = _feed([data])
    chunks, i = [], 0
    for n in cuts:
        chunks.append(data[i : i + n])
        i += n
    chunks.append(data[i:])
    split = _feed(chunks)
    _check(whole[0])
    assert split == whole  # how TCP cuts the stream changes nothing


# Real names: every event the parser reads, a few it ignores, every field it looks at (and Dest twins).
FIELD_NAMES = sorted(
    {
        "Event", "ActionID", "CommandID", "Response", "Channel", "Uniqueid", "Linkedid", "CallerIDNum",
        "CallerIDName", "Context", "Exten", "Priority", "ChanVariable", "Queue", "Interface", "MemberName",
        "Position", "Count", "OriginalPosition", "HoldTime", "RingTime", "TalkTime", "Reason", "Name",
        "Location", "StateInterface", "Membership", "Penalty", "CallsTaken", "LastCall", "LastPause",
        "LoginTime", "InCall", "Status", "Paused", "PausedReason", "Wrapuptime", "Ringinuse", "Max",
        "Strategy", "Calls", "Holdtime", "Completed", "Abandoned", "ServiceLevel", "ServicelevelPerf",
        "ServicelevelPerf2", "Weight", "Wait", "ListItems", "LoggedIn", "Available", "Callers",
        "LongestHoldTime", "Application", "Data", "Cause", "Cause-txt", "ChanVariable(Local/a@b-0001;1)",
    }
    | {"Dest" + f for f in ("Channel", "Uniqueid", "Linkedid", "Priority", "ChanVariable", "Context")}
)  # fmt: skip
EVENTS = sorted(EVENT_NAMES | {"Newchannel", "FullyBooted", "Shutdown", "QueueCallerJoin2", ""})
SAMPLES = ["", "0", "1", "2", "8", "9", "-1", "4000", "0.5", "x", "caller", "agent", "transfer",
           "Success", "Failure", "<unknown>", "A=b", "=b", "A=", "A", "1 2", " 7 "]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(SAMPLES),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=20).filter(lambda s: "\r\n" not in s),
)


@st.composite
def ami_message(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append(f"Event: {draw(st.sampled_from(EVENTS))}")
    for _ in range(draw(st.integers(0, 30))):
        lines.append(f"{draw(st.sampled_from(FIELD_NAMES))}: {draw(VALUES)}")  # repeats happen
    draw(st.randoms()).shuffle(lines)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ami_message(), min_size=1, max_size=8), st.integers(min_value=1, max_value=97))
def test_messages_with_fields_missing_repeated_or_wrong_give_typed_events_or_a_field_error(
    messages: list[bytes], cut: int
) -> None:
    stream = b"".join(messages)
    events, malformed, _ = _feed([stream[i : i + cut] for i in range(0, len(stream), cut)])
    _check(events)
    assert len(events) + malformed <= len(messages)


@settings(max_examples=1000, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=3)),
        max_size=40,
    ),
    st.sampled_from(EVENTS),
)
def test_parse_event_gives_an_event_none_or_its_own_error(fields: dict[str, Any], name: str) -> None:
    fields["Event"] = name
    try:
        event = parse_event(fields)
    except AmiFieldError as exc:
        assert exc.event == name and exc.field
        return
    assert event is None or isinstance(event, AmiEvent)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # cut a piece out
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 64)]
        elif op == 2:  # splice random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and buf:  # repeat a line (a field given twice)
            i = rng.randrange(len(buf))
            start = buf.rfind(b"\r\n", 0, i) + 2
            end = buf.find(b"\r\n", i)
            if end > start:
                buf[start:start] = buf[start : end + 2]
        elif op == 4:  # a digit field made a word, or a number huge
            i = buf.find(b": ", rng.randrange(len(buf) + 1))
            if i >= 0:
                buf[i + 2 : i + 2] = rng.choice([b"x", b"-", b"99999999999999999999", b""])
        elif op == 5 and buf:  # drop a blank line: two messages run together
            i = buf.find(b"\r\n\r\n", rng.randrange(len(buf)))
            if i >= 0:
                del buf[i : i + 2]
    return bytes(buf)


def test_mutated_captures() -> None:
    rng = random.Random(5038)
    totals = {"events": 0, "malformed": 0}
    for _ in range(MUTATED_STREAMS):
        data = mutate(rng, rng.choice(CAPTURED))
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 5)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        events, malformed, _ = _feed(chunks)
        _check(events)
        totals["events"] += len(events)
        totals["malformed"] += malformed
    assert totals["events"] > 3_000 and totals["malformed"] > 100, totals  # both paths really exercised
