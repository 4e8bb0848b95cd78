"""Retention on the real Redis and a fake clock: calls older than the window lose every key (record,
transcript, disposition, Rasa tracker), younger ones keep theirs, and the purge is logged as a count."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.retention import Purge, call_keys

NOW = 2_000_000_000.0


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    yield client
    await client.close()


async def _call(redis: aioredis.Redis, ended: float | None, started: float) -> str:
    call_id = str(uuid.uuid4())
    record, transcript, disposition, tracker = call_keys(call_id)
    fields = {"started_at": str(started)}
    if ended is not None:
        fields["ended_at"] = str(ended)
    await redis.hset(record, mapping=fields)
    await redis.xadd(transcript, {"who": "caller", "text": "[redacted]", "t": str(started)})
    await redis.hset(disposition, "maya", "{}")
    await redis.set(tracker, "{}")
    return call_id


async def test_old_calls_are_purged_with_every_key_and_logged(
    redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    old = await _call(redis, ended=NOW - 90_000, started=NOW - 90_100)
    never_ended = await _call(redis, ended=None, started=NOW - 100_000)
    young = await _call(redis, ended=NOW - 3_600, started=NOW - 3_700)
    try:
        purge = Purge(redis, window_s=86_400, clock=lambda: NOW)
        with caplog.at_level(logging.INFO, logger="bot.retention"):
            assert await purge.once() >= 2
        for call_id in (old, never_ended):
            assert await redis.exists(*call_keys(call_id)) == 0
        assert await redis.exists(*call_keys(young)) == 4
        assert any("retention: purged" in r.getMessage() for r in caplog.records)
        assert not any(old in r.getMessage() for r in caplog.records)  # a count, no ids or content
        assert await redis.exists(*call_keys(old)) == 0
    finally:
        for call_id in (old, never_ended, young):
            await redis.delete(*call_keys(call_id))
