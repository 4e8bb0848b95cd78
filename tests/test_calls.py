"""The active-call set on a controllable clock and the real Redis: calls a gateway stops vouching for (it
died) drop out within three heartbeats; ended calls leave at once; an old plain set is migrated."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.calls import ActiveCalls, CallRecord


class Clock:
    def __init__(self) -> None:
        self.t = 1_900_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    yield client
    await client.close()


@pytest.fixture
def key() -> str:
    return f"attendant:test:active:{uuid.uuid4()}"


async def test_a_dead_gateways_calls_drop_out_within_three_beats(redis: aioredis.Redis, key: str) -> None:
    clock = Clock()
    a = ActiveCalls(redis, heartbeat_s=5, clock=clock, key=key)  # gateway A
    b = ActiveCalls(redis, heartbeat_s=5, clock=clock, key=key)  # gateway B
    try:
        await a.beat(["call-a"])
        await b.beat(["call-b"])
        assert sorted(await a.live()) == ["call-a", "call-b"]
        for _ in range(3):  # A dies; B goes on beating
            clock.t += 5
            await b.beat(["call-b"])
        assert sorted(await a.live()) == ["call-a", "call-b"]  # 15 s: still within three beats
        clock.t += 0.1
        assert await a.live() == ["call-b"]  # not vouched for in over 15 s: not active, before any prune
        assert await redis.zscore(key, "call-a") is not None
        assert await b.beat(["call-b"]) == 1  # and the next beat removes it
        assert await redis.zrange(key, 0, -1) == ["call-b"]
        assert 0 < await redis.ttl(key) <= 31  # the set itself expires when no gateway is left
    finally:
        await redis.delete(key)


async def test_ended_calls_leave_and_an_old_set_is_migrated(redis: aioredis.Redis, key: str) -> None:
    await redis.sadd(key, "leaked-call")
    active = ActiveCalls(redis, heartbeat_s=5, key=key)
    try:
        await active.migrate()
        assert await redis.exists(key) == 0
        await active.beat(["x"])
        assert await active.live() == ["x"]
    finally:
        await redis.delete(key)


async def test_a_call_record_enters_and_leaves_the_active_set(redis: aioredis.Redis) -> None:
    call_id = str(uuid.uuid4())
    record = CallRecord(redis, call_id)
    try:
        await record.start()
        assert call_id in await ActiveCalls(redis).live()
        await record.finish("completed", reason="goodbye")
        assert call_id not in await ActiveCalls(redis).live()
    finally:
        await redis.delete(f"attendant:call:{call_id}")


async def test_a_beat_never_brings_back_a_call_that_ended(redis: aioredis.Redis) -> None:
    """The gateway's snapshot of its calls may still hold one whose end was written a moment before the beat
    (seen on a loaded CI machine: the ended call stayed 'active' 15 s and the dialplan's wait timed out)."""
    ended, live = str(uuid.uuid4()), str(uuid.uuid4())
    active = ActiveCalls(redis)
    try:
        for call_id in (ended, live):
            await CallRecord(redis, call_id).start()
        await CallRecord(redis, ended).finish("handoff", reason="technical")
        await active.beat([ended, live])  # the snapshot was taken before the end was written
        assert await redis.zscore("attendant:calls:active", ended) is None
        assert live in await active.live()
        await CallRecord(redis, ended).start()  # the same id starting again is vouched for as before
        await active.beat([ended])
        assert ended in await active.live()
    finally:
        await redis.zrem("attendant:calls:active", ended, live)
        await redis.delete(f"attendant:call:{ended}", f"attendant:call:{live}")
