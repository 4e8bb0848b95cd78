"""What a card shows: every spelling of the context the bot may leave, nothing it does not name, no secret
slot, no card-like number; and the desk's wrap-up timing on a controlled clock."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from bot.console.desk import Answered, Completed, Desk, Offered, clean_note
from bot.console.view import call_view, parse_context
from tests.console_helpers import FakeClock, FakeControl, new_call_id, roster


def view_of(context: object, **fields: str) -> dict[str, object]:
    raw = {"context": context if isinstance(context, str) else json.dumps(context), **fields}
    return call_view({k.encode(): v.encode() for k, v in raw.items()}, [])


def test_todays_handoff_payload_shape_is_understood() -> None:
    """The flat shape actions.handoff_payload writes now (customer_id, caller_kind, last_intent)."""
    view = view_of(
        {
            "call_id": "x",
            "caller_number": "+15550100004",
            "verified": True,
            "customer_id": "C-0004",
            "task": "order_status",
            "last_intent": "ask_order_status",
            "pin_attempts": 1,
            "caller_kind": "loyal",
            "slots": {"order_ref": "100002"},
        },
        reason="requested",
        skill="orders",
    )
    assert view["customer"] == {"id": "C-0004", "kind": "loyal"}
    assert view["caller_number"] == "+15550100004" and view["verified"] is True
    assert view["reason"] == "requested" and view["skill"] == "orders"  # from the hash
    assert view["intents"] == [{"name": "ask_order_status", "confidence": None}]
    assert view["slots"] == [{"name": "order_ref", "value": "100002"}]
    assert "pin_attempts" not in json.dumps(view) and "call_id" not in view


def test_nested_shape_and_variants() -> None:
    view = view_of(
        {
            "customer": {"id": "C-1", "name": "Ada Lovelace", "kind": "existing", "pin": "4719"},
            "verification": {"verified": True, "method": "pin"},
            "intents": {"ask_balance": 0.9, "request_agent": 1.7},
            "handoff": {"reason": "no-match", "skill": "billing"},
            "waited": "125",
            "priority": 1,
            "language": "fr",
            "orders": [{"number": "100004", "status": "processing", "items": [1, 2]}],
        },
        reason="requested",
    )
    assert view["customer"] == {"id": "C-1", "name": "Ada Lovelace", "kind": "existing"}
    assert view["verified"] is True and view["verified_how"] == "pin"
    assert view["intents"] == [
        {"name": "ask_balance", "confidence": 0.9},
        {"name": "request_agent", "confidence": 1.0},
    ]
    assert view["reason"] == "no-match" and view["skill"] == "billing"
    assert view["waited_s"] == 125.0 and view["priority"] == 1 and view["language"] == "fr"
    assert view["history"] == {"orders": [[["number", "100004"], ["status", "processing"]]]}
    assert "4719" not in json.dumps(view)


def test_secrets_never_reach_the_screen() -> None:
    view = view_of(
        {
            "slots": {
                "pin": "4719",
                "date_of_birth": "1815-12-10",
                "card_number": "4111111111111111",
                "problem": "card 4111 1111 1111 1111 was charged twice",
                "callback_number": "+15550100001",
                "verified": False,
            },
            "history": {"incidents": [{"id": "500001", "cvv": "123", "note": "4111-1111-1111-1111"}]},
        }
    )
    shown = json.dumps(view)
    for secret in ("4719", "1815", "4111", "cvv", '123"'):
        assert secret not in shown, secret
    names = [s["name"] for s in view["slots"]]  # type: ignore[union-attr]
    assert names == ["problem", "callback_number"]
    assert "[number withheld]" in shown
    transcript = call_view({}, [(b"1-0", {b"who": b"caller", b"text": b"my card is 5500 0000 0000 0004"})])
    assert transcript["transcript"][0]["text"] == "my card is [number withheld]"


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", "null"])
def test_a_missing_or_broken_context_shows_what_the_hash_has(raw: str) -> None:
    assert parse_context(raw or None) == {}
    view = view_of(raw, caller_number="+15550100009", reason="technical")
    assert view["caller_number"] == "+15550100009" and view["reason"] == "technical"
    assert view["customer"] is None and view["intents"] == [] and view["slots"] == []


def test_notes_are_stored_as_text() -> None:
    assert clean_note("  line one\nline\x00 two\x1b[31m  ") == "line one\nline two[31m"
    assert len(clean_note("x" * 5000)) == 2000


async def test_countdown_on_a_controlled_clock(redis_url: str) -> None:
    r = aioredis.from_url(redis_url)
    clock, control = FakeClock(), FakeControl()
    desk = Desk(roster(), r, control, clock)
    one, two = new_call_id(), new_call_id()
    try:
        for call_id in (one, two):
            await desk.feed(Offered("priya", call_id, "attendant-support", "u", clock()))
            await desk.feed(Answered("priya", call_id, clock()))
        await desk.feed(Completed("priya", one, "attendant-support", 60, 20, clock()))
        clock.advance(5)
        await desk.feed(Completed("priya", two, "attendant-support", 60, 20, clock()))
        assert control.calls == [("set_paused", "PJSIP/1003", True, "wrap-up")]  # paused once
        clock.advance(15)
        await desk.expire()  # the first wrap-up is over, the second goes on: still paused
        status = {c.call_id: c.status for c in desk.cards("priya")}
        assert status == {one: "done", two: "wrapup"}
        assert len(control.calls) == 1
        clock.advance(5)
        await desk.expire()
        assert [c.status for c in desk.cards("priya")] == ["done", "done"]
        assert control.calls[-1] == ("set_paused", "PJSIP/1003", False, "")
        assert await desk.ready("priya") is False  # nothing left to end: no action
        assert len(control.calls) == 2

        # no wrap-up time: no pause, the wrap-up waits for the agent
        three = new_call_id()
        await desk.feed(Offered("priya", three, "attendant-support", "u", clock()))
        await desk.feed(Completed("priya", three, "attendant-support", 10, 0, clock()))
        clock.advance(3600)
        await desk.expire()
        assert desk.cards("priya")[0].status == "wrapup" and len(control.calls) == 2
        assert await desk.ready("priya") is True
        assert desk.cards("priya")[0].status == "done"
    finally:
        await r.close()
