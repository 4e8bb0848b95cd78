"""The console fed by real AMI traffic: Asterisk 22's queue events, replayed on a real socket, become pops,
withdrawals, answers and wrap-ups on the right agent's desk; a disposition becomes exactly one ``QueueLog``,
also when the AMI connection drops right after sending it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.console.agents import DEFAULT_DISPOSITIONS, Agent, Roster
from bot.console.asterisk import AmiCallControl, DeskFeed
from bot.console.desk import Completed, Desk, DeskEvent, Offered, Withdrawn
from telephony.callstate import Skill
from tests.amitools import wired

ROSTER = Roster(
    agents=(
        Agent("alice", "Alice", "Local/alice@agent-never", "Alice", ((Skill.BILLING, 5),), ("en",)),
        Agent("bob", "Bob", "Local/bob@agent-answer-2s", "Bob", ((Skill.BILLING, 4),), ("en",)),
    ),
    dispositions=DEFAULT_DISPOSITIONS,
)
CALL = "00000000-0000-4000-8000-000000000001"  # ATTENDANT_UUID of caller 1 in the captures


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    yield client
    await client.delete("attendant:agent:alice:offers", "attendant:agent:bob:offers")
    await client.delete(f"attendant:call:{CALL}:disposition")
    await client.close()


async def test_ring_no_answer_then_next_on_the_desks() -> None:
    async with wired("ring-no-answer-then-next") as w:
        seen: list[DeskEvent] = []
        feed = DeskFeed(ROSTER, seen.append, w.model, wall=lambda: 0.0)
        for event in await w.step():
            seen.extend(feed.translate(event))
        kinds = [(type(e).__name__, e.agent_id) for e in seen]
        assert kinds == [
            ("Offered", "alice"),
            ("Withdrawn", "alice"),
            ("Offered", "bob"),
            ("Answered", "bob"),
            ("Completed", "bob"),
        ]
        assert all(e.call_id == CALL for e in seen)
        offered = seen[2]
        assert isinstance(offered, Offered) and offered.queue == "attendant-billing" and offered.uniqueid
        withdrawn = seen[1]
        assert isinstance(withdrawn, Withdrawn) and withdrawn.why == "ring-no-answer"
        completed = seen[-1]
        assert isinstance(completed, Completed) and completed.wrapup_s == 15 and completed.talk_s >= 5


async def test_an_abandoned_caller_is_withdrawn_from_the_ringing_agent() -> None:
    async with wired("caller-abandons") as w:
        seen: list[DeskEvent] = []
        feed = DeskFeed(ROSTER, seen.append, w.model, wall=lambda: 0.0)
        for event in await w.step():
            seen.extend(feed.translate(event))
        assert [(type(e).__name__, getattr(e, "why", "")) for e in seen] == [
            ("Offered", ""), ("Withdrawn", "ring-no-answer"), ("Offered", ""), ("Withdrawn", "abandoned"),
        ]  # fmt: skip


async def _desk_after_call(w: object, redis: aioredis.Redis) -> Desk:
    desk = Desk(ROSTER, redis, AmiCallControl(w.client), time.time, pause_in_wrapup=False)  # type: ignore[attr-defined]
    feed = DeskFeed(ROSTER, desk.feed, w.model)  # type: ignore[attr-defined]
    for event in await w.step():  # type: ignore[attr-defined]
        for desk_event in feed.translate(event):
            await desk.feed(desk_event)
    return desk


async def test_a_disposition_is_one_queue_log_row(redis: aioredis.Redis) -> None:
    async with wired("ring-no-answer-then-next") as w:
        desk = await _desk_after_call(w, redis)
        code = ROSTER.dispositions[0].code if ROSTER.dispositions else "resolved"
        saved = await desk.dispose("bob", CALL, code, "sorted")
        again = await desk.dispose("bob", CALL, code, "sorted")
        assert not saved.duplicate and again.duplicate
        rows = w.server.sent("QueueLog")
        assert len(rows) == 1
        row = rows[0]
        assert (row.get("Queue"), row.get("Event"), row.get("Interface"), row.get("Message")) == (
            "attendant-billing", "DISPOSITION", "Bob", code,
        )  # fmt: skip
        assert row.get("UniqueId")


async def test_a_dropped_connection_right_after_the_queue_log_sends_no_second_row(
    redis: aioredis.Redis,
) -> None:
    async with wired("ring-no-answer-then-next") as w:
        desk = await _desk_after_call(w, redis)
        w.server.drop_on("QueueLog")
        saved = await desk.dispose("bob", CALL, "resolved", "")
        assert not saved.duplicate  # kept in the call record although Asterisk's answer was lost
        await w.server.wait_connections(2)
        await w.client.wait_ready(5)
        assert (await desk.dispose("bob", CALL, "resolved", "")).duplicate
        assert len(w.server.sent("QueueLog")) == 1
        assert await redis.hget(f"attendant:call:{CALL}:disposition", "bob")
